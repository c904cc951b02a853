"""Every sample of a dataset loaded, and every image file decoded whole, before a long run.

Why it exists: a training run meets a damaged or mismatched file only when its sampler draws it, which may be
hours into a million-iteration schedule, and one damaged file at a time; a truncated JPEG it never meets at all,
because OpenCV (the pipelines' decoder) fills the missing rows with grey and trains on them. mmagic and mmengine
have no pass over a dataset's files; ``tools/analysis_tools/check_dataset.py`` runs this one over a config's
datasets and lists every problem at once.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .image_io import ImageFileError, check_image_file

#: Wrappers of mmengine (``RepeatDataset``, ``ClassBalancedDataset``: ``.dataset``; ``ConcatDataset``:
#: ``.datasets``) are unwrapped: their samples are those of the datasets inside, each checked once.


def leaf_datasets(dataset: Any) -> List[Any]:
    """The datasets inside ``dataset``'s wrappers (``dataset`` itself when it wraps nothing)."""
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)):
        return [leaf for d in inner for leaf in leaf_datasets(d)]
    wrapped = getattr(dataset, 'dataset', None)
    if wrapped is not None and hasattr(wrapped, 'prepare_data'):
        return leaf_datasets(wrapped)
    return [dataset]


def sample_files(dataset: Any, idx: int) -> Dict[str, str]:
    """``{key: path}`` of the image files of sample ``idx`` (the ``<key>_path`` entries of its data info)."""
    info = dataset.get_data_info(idx)
    return {k[:-5]: v for k, v in info.items() if k.endswith('_path') and isinstance(v, str)}


def pair_sizes(sample: Any) -> Optional[Tuple[int, int, int, int]]:
    """``(input H, input W, ground-truth H, W)`` of a prepared sample (``PackInputs``: ``inputs`` and
    ``data_samples.gt_img``, C x H x W), or None where it lacks either."""
    inputs = sample.get('inputs') if isinstance(sample, dict) else None
    gt = getattr(sample.get('data_samples'), 'gt_img', None) if isinstance(sample, dict) else None
    if not hasattr(inputs, 'shape') or not hasattr(gt, 'shape') or len(inputs.shape) < 2 or len(gt.shape) < 2:
        return None
    return (*tuple(inputs.shape[-2:]), *tuple(gt.shape[-2:]))


def _heading(dataset: Any, idx: int) -> str:
    """``sample 'key' (img: 'a.png', gt: 'b.png')``: how every sentence about sample ``idx`` starts."""
    listed = ', '.join(f"{k}: '{v}'" for k, v in sample_files(dataset, idx).items())
    return f"sample '{dataset.get_data_info(idx).get('key', idx)}' ({listed})"


def check_sample(dataset: Any, idx: int) -> Optional[str]:
    """One sentence naming what is wrong with sample ``idx``, or None when it loads and its files decode whole.

    Each file is decoded whole by Pillow first (a truncated or corrupt file, which OpenCV would fill in, and a
    file above the dataset's pixel limit are refused), then the sample goes through the dataset's pipeline as a
    training or test loop would take it (sizes that do not match the scale, a patch larger than the image, ...).
    """
    return _inspect(dataset, idx)[0]


def _inspect(dataset: Any, idx: int) -> Tuple[Optional[str], Optional[Tuple[int, int, int, int]]]:
    """:func:`check_sample`'s sentence, and the sample's ``(input H, input W, ground-truth H, W)`` where it has both
    (the pairs of a test set are not cropped by the pipeline, so their scale is compared across the set)."""
    heading = _heading(dataset, idx)
    for name, path in sample_files(dataset, idx).items():
        try:
            check_image_file(path, getattr(dataset, 'max_pixels', None),
                             'max_pixels=N in the dataset config', decode=True)
        except ImageFileError as err:  # names the file: "'path' is truncated or corrupt (...)"
            return f"{heading}: its {name} file {str(err).split('; copy or export')[0]}", None
        except Exception as err:  # noqa: BLE001 (a file gone since the listing, a reader's own failure)
            return f"{heading}: its {name} file '{path}' could not be read: {err}", None
    try:
        sample = dataset.prepare_data(idx)
    except Exception as err:  # noqa: BLE001 (every failure is reported, the pass goes on)
        text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        if type(err).__name__ == 'DataSampleError':  # already names the sample and its files
            return text.split('; replace or remove')[0], None
        return f"{heading} could not be loaded: {text}", None
    sizes = pair_sizes(sample)
    if sizes is None:
        return None, None
    ih, iw, gh, gw = sizes
    if ih and iw and gh * iw != gw * ih:
        return (f'{heading}: its input is {ih}x{iw} and its ground truth {gh}x{gw}, not one scale for both sides; '
                'replace the file that does not belong to the pair'), None
    return None, sizes


def _odd_scales(dataset: Any, pairs: Dict[int, Tuple[int, int, int, int]]) -> List[str]:
    """One sentence per sample whose scale is not the one most of the set's samples have."""
    scales = {idx: round(gh / ih, 3) for idx, (ih, iw, gh, gw) in pairs.items() if ih}
    if len(scales) < 2:
        return []
    (common, count), = Counter(scales.values()).most_common(1)
    if count * 2 <= len(scales):  # no majority: the set has no one scale to compare with
        return []
    odd = []
    for idx, scale in sorted(scales.items()):
        if scale != common:
            ih, iw, gh, gw = pairs[idx]
            odd.append(f'{_heading(dataset, idx)}: its input is {ih}x{iw} and its ground truth {gh}x{gw} '
                       f'(x{scale:g}), unlike the x{common:g} of the other {count} samples; replace the file that '
                       'does not belong to the pair')
    return odd


def check_dataset(dataset: Any, jobs: Optional[int] = None,
                  progress: Optional[Callable[[int], Any]] = None) -> Iterator[str]:
    """Check every sample of ``dataset`` (its wrappers unwrapped); yield one sentence per bad sample.

    The problems of each sample come in sample order; then those of samples whose input / ground-truth scale is not
    the one most samples of their dataset have (a test set's pairs are not cropped, so nothing else compares them).

    Args:
        dataset: A built mmengine dataset (``BaseDataset`` or a wrapper of some).
        jobs (int, optional): Samples checked at once (threads: decoding releases the interpreter lock).
            Default: None, i.e. the number of CPU cores.
        progress (callable, optional): Called with 1 after each sample (a progress bar's ``update``).

    Yields:
        str: What is wrong with one sample, naming its key and files.
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    with ThreadPoolExecutor(jobs) as pool:
        for leaf in leaf_datasets(dataset):
            pairs = {}
            for idx, (problem, pair) in enumerate(pool.map(lambda i, d=leaf: _checked(d, i, progress),
                                                           range(len(leaf)))):
                if problem is not None:
                    yield problem
                elif pair is not None:
                    pairs[idx] = pair
            yield from _odd_scales(leaf, pairs)


def _checked(dataset: Any, idx: int, progress: Optional[Callable[[int], Any]]):
    try:
        return _inspect(dataset, idx)
    finally:
        if progress is not None:
            progress(1)


def sample_count(dataset: Any) -> int:
    """Samples :func:`check_dataset` checks: those of the datasets inside the wrappers, each once."""
    return sum(len(d) for d in leaf_datasets(dataset))


__all__ = ['check_dataset', 'check_sample', 'leaf_datasets', 'pair_sizes', 'sample_count', 'sample_files']
