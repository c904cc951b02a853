"""Train a task's demo model for a fixed budget and compare it with the trivial baseline on held-out photos.

    python tools/analysis_tools/quick_quality.py TASK [TASK ...] [--data-root data/demo] [--iters N] [--json out.json]
    TASK: sr (PA-EDSR x2), dn (colour denoising, sigma 30), car (grey JPEG q10), demosaic, or all

Each task trains its demo config (``configs/demo/``) on the offline demo data
(``python tools/dataset_converters/make_demo_data.py``), then restores the held-out demo photos (never seen in training)
and prints the model's PSNR (the config's own protocol: channel, crop) next to the baseline's:

* sr: bicubic up-sampling of the LR image (OpenCV ``INTER_CUBIC``);
* dn: the noisy input itself;
* car: the JPEG-compressed input itself;
* demosaic: bilinear interpolation of the zero-filled Bayer mosaic.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import time
import warnings
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

if TYPE_CHECKING:                  # the stack is imported when used, so that --help answers at once
    import numpy as np
    from mmengine.config import Config
    from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
def psnr_settings(cfg: Config) -> dict:
    """crop_border / convert_to of the first PSNR metric of the config's test evaluator.

    ``channel_order='BGR'`` as mmagic's sample-wise metrics use it: the model outputs they compare
    (and :func:`evaluate` compares) are de-normalised to BGR for colour images.
    """
    evaluator = cfg.test_evaluator[0] if isinstance(cfg.test_evaluator, list) else cfg.test_evaluator
    for metric in evaluator['metrics']:
        if metric['type'] == 'PSNR':
            return dict(crop_border=metric.get('crop_border', 0), convert_to=metric.get('convert_to'),
                        channel_order='BGR')
    raise SystemExit('the config has no PSNR metric in test_evaluator')


def configure(task: str, data_root: str, work_dir: str, iters: Optional[int]) -> Config:
    """The task's demo config pointed at ``data_root`` and ``work_dir``."""
    from mmengine.config import Config

    from panet_mm.datasets.demo_tasks import DEMO_TASKS
    cfg = Config.fromfile(osp.join(ROOT, DEMO_TASKS[task][0]))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader]['dataset']
        ds['data_root'] = osp.join(data_root, osp.basename(ds['data_root']))
    cfg.work_dir = work_dir
    if iters is not None:
        cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters
    cfg.default_hooks.checkpoint.interval = cfg.train_cfg.max_iters
    grids = ('BasicVisualizationHook', 'FirstSamplesVisualizationHook')
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] not in grids]
    return cfg


def evaluate(runner: Runner, task: str, settings: dict) -> Dict[str, float]:
    """Mean PSNR of the model and of the baseline over the config's test set."""
    import numpy as np
    import torch
    from mmagic.evaluation.metrics.psnr import psnr

    from panet_mm.datasets.demo_tasks import BASELINES
    loader = runner.build_dataloader(runner.cfg.test_dataloader)
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    model.eval()
    ours: List[float] = []
    base: List[float] = []
    def hwc(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().transpose(1, 2, 0).astype(np.float64)

    for batch in loader:
        # the model's outputs carry the ground truth, the input and the prediction as mmagic's metrics
        # see them (de-normalised, in the pre-processor's output channel order): all three compared alike
        with torch.no_grad():
            outs = model.val_step(batch)
        for out in outs:
            gt, lq, pred = hwc(out.gt_img), hwc(out.input), hwc(out.output.pred_img)
            ours.append(psnr(np.clip(pred, 0, 255), gt, **settings))
            base.append(psnr(BASELINES[task](lq, gt.shape), gt, **settings))
    return {'model': float(np.mean(ours)), 'baseline': float(np.mean(base)), 'images': len(ours)}


def print_table(results: Dict[str, dict], json_path: Optional[str]) -> None:
    """The comparison as a markdown table, and as JSON in ``json_path`` when given."""
    print('\n| task | demo config | iterations | training time | held-out images | model PSNR | baseline '
          '| baseline PSNR | gain |')
    print('|---|---|---|---|---|---|---|---|---|')
    for task, r in results.items():
        print(f"| {task} | `{r['config']}` | {r['iters']} | {r['train_s']:.0f} s | {r['images']} | {r['model']:.2f} | "
              f"{r['baseline_name']} | {r['baseline']:.2f} | {r['model'] - r['baseline']:+.2f} |")
    if json_path:
        os.makedirs(osp.dirname(osp.abspath(json_path)), exist_ok=True)
        with open(json_path, 'w') as f:
            json.dump(results, f, indent=2)



def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='Train demo models and compare them with trivial baselines')
    parser.add_argument('tasks', nargs='+', metavar='TASK', help='sr, dn, car, demosaic or all')
    parser.add_argument('--data-root', default='data/demo',
                        help='demo data (python tools/dataset_converters/make_demo_data.py)')
    parser.add_argument('--work-dir', default='work_dirs/quick_quality')
    parser.add_argument('--iters', type=int, help="training iterations (default: the demo config's)")
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    if not osp.isdir(args.data_root):
        raise SystemExit(f"demo data folder '{args.data_root}' not found; build it with: "
                         'python tools/dataset_converters/make_demo_data.py')
    with warnings.catch_warnings(record=True) as early:    # the stack's import-time warnings, filtered below
        warnings.simplefilter('always')
        import torch
        from mmengine.registry import init_default_scope

        from panet_mm.datasets.demo_tasks import DEMO_TASKS
        from panet_mm.engine.cli import build_runner, readable_errors
        from panet_mm.engine.quiet import quiet_third_party_warnings
    quiet_third_party_warnings(early)
    choices = [*DEMO_TASKS, 'all']
    bad = [t for t in args.tasks if t not in choices]
    if bad:
        parser.error(f"argument TASK: invalid choice: {bad[0]!r} (choose from {', '.join(map(repr, choices))})")
    tasks = list(DEMO_TASKS) if 'all' in args.tasks else args.tasks
    init_default_scope('mmagic')
    results = {}
    for task in tasks:
        cfg = configure(task, args.data_root, osp.join(args.work_dir, task), args.iters)
        with readable_errors():
            runner = build_runner(cfg)
            start = time.perf_counter()
            runner.train()
            train_s = time.perf_counter() - start
            results[task] = evaluate(runner, task, psnr_settings(cfg))
        results[task].update(iters=cfg.train_cfg.max_iters, baseline_name=DEMO_TASKS[task][1],
                             config=DEMO_TASKS[task][0],
                             train_s=train_s, threads=torch.get_num_threads())
    print_table(results, args.json)

if __name__ == '__main__':
    main()
