"""``panet_mm.engine.cli``: what the tools share (config loading, metric logging by iteration)."""
import panet_mm  # noqa: F401  (registers the panet_mm modules)


def _args(config, *options, work_dir=None):
    import argparse
    return argparse.Namespace(config=config, work_dir=work_dir, cfg_options=list(options) or None, launcher='none',
                              local_rank=0)


def test_iteration_runs_log_validation_metrics_at_the_iteration(tmp_path):
    """mmengine's LoggerHook logged them at the epoch, 0 all through an IterBasedTrainLoop: every validation point
    of scalars.json / TensorBoard sat at step 0. mmagic's own runtime (a plain EDSR config here) too."""
    from conftest import DEMO_CONFIG

    from panet_mm.engine.cli import load_config
    plain = tmp_path / 'edsr.py'
    plain.write_text("_base_ = 'mmagic::edsr/edsr_x2c64b16_1xb16-300k_div2k.py'\n")
    for config in (DEMO_CONFIG, str(plain), 'configs/mix/demo/edsr_pa_sr_x2_demo.py'):
        assert load_config(_args(config)).default_hooks.logger.log_metric_by_epoch is False, config
    kept = load_config(_args(str(plain), 'default_hooks.logger.log_metric_by_epoch=True'))
    assert kept.default_hooks.logger.log_metric_by_epoch is True  # what the config says is kept


def test_a_work_dir_that_is_a_file_is_named(tmp_path):
    """`--work-dir notes.txt` (an existing file) ended in os.makedirs' FileExistsError traceback."""
    import pytest
    from conftest import DEMO_CONFIG

    from panet_mm.engine.cli import load_config
    notes = tmp_path / 'notes.txt'
    notes.write_text('x')
    with pytest.raises(SystemExit, match=rf"^error: --work-dir '{notes}' is a file; name a folder"):
        load_config(_args(DEMO_CONFIG, work_dir=str(notes)))
    with pytest.raises(SystemExit, match=rf"^error: the config's work_dir '{notes}' is a file"):
        load_config(_args(DEMO_CONFIG, f'work_dir={notes}'))


def test_errors_of_a_distributed_run_name_their_process(monkeypatch, capsys):
    """torchrun interleaves the processes' output: a readable line came untagged, and the rank whose collective
    failed because another stopped printed ~40 lines of traceback ending in gloo's "Connection closed by peer"."""
    import pytest

    from panet_mm.engine.cli import readable_errors
    gloo = RuntimeError('[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer '
                        '[127.0.0.1]:29500')
    with pytest.raises(RuntimeError):  # a single process: not a peer's failure, the traceback stays
        with readable_errors():
            raise gloo
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.delenv('PANET_MM_DEBUG', raising=False)
    with pytest.raises(SystemExit):
        with readable_errors():
            raise gloo
    assert capsys.readouterr().err == ('error (rank 0): another process of this distributed run stopped; its error '
                                       '(above) says why\n')
    with pytest.raises(RuntimeError, match='CUDA out of memory'):  # other runtime errors are not hidden
        with readable_errors():
            raise RuntimeError('CUDA out of memory')


def test_errors_of_srun_tasks_name_their_rank_before_the_process_group(monkeypatch, capsys):
    """Under Slurm a config error comes before RANK is set (mmengine sets it from SLURM_PROCID later): each srun
    task printed the same untagged line."""
    import pytest

    from panet_mm.engine.cli import readable_errors
    from panet_mm.utils.errors import ParameterError
    for name in ('RANK', 'WORLD_SIZE', 'PANET_MM_DEBUG'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    with pytest.raises(SystemExit):
        with readable_errors():
            raise ParameterError('work_dir', 'bad {param}')
    assert capsys.readouterr().err.startswith('error (rank 3): bad ')
    monkeypatch.setenv('SLURM_NTASKS', '1')  # one task (e.g. python tools/train.py inside salloc): no tag
    with pytest.raises(SystemExit):
        with readable_errors():
            raise ParameterError('work_dir', 'bad {param}')
    assert capsys.readouterr().err.startswith('error: bad ')


def test_readable_errors_end_an_interrupted_run_with_one_line(capsys, monkeypatch):
    """Ctrl-C in tools/train.py or tools/test.py printed a KeyboardInterrupt traceback from inside torch."""
    import pytest

    from panet_mm.engine.cli import readable_errors
    monkeypatch.delenv('PANET_MM_DEBUG', raising=False)
    with pytest.raises(SystemExit) as stop:
        with readable_errors(interrupted='checkpoints are kept; continue with --resume'):
            raise KeyboardInterrupt
    assert stop.value.code == 130
    assert capsys.readouterr().err == 'interrupted (Ctrl-C): checkpoints are kept; continue with --resume\n'
    monkeypatch.setenv('PANET_MM_DEBUG', '1')  # the traceback, for a bug report
    with pytest.raises(KeyboardInterrupt):
        with readable_errors():
            raise KeyboardInterrupt


def test_resume_says_that_optimizer_overrides_do_not_apply(tmp_path):
    """`--resume --cfg-options optim_wrapper.optimizer.lr=0.01` went on at the saved learning rate without a word."""
    from panet_mm.engine.cli import resume_overrides_note
    options = ['optim_wrapper.optimizer.lr=0.01', 'train_cfg.max_iters=10', 'param_scheduler.milestones=[5]']
    assert resume_overrides_note(options, str(tmp_path)) is None            # nothing to resume: they apply
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert resume_overrides_note(options, str(tmp_path)) == (
        '--resume continues the saved optimizer and learning-rate schedule, so optim_wrapper.optimizer.lr, '
        'param_scheduler.milestones from --cfg-options do not apply; to start from the weights with new settings, '
        'pass --cfg-options load_from=CHECKPOINT without --resume')
    assert resume_overrides_note(['train_cfg.max_iters=10'], str(tmp_path)) is None
