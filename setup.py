"""Packaging for panet_mm: PANet pyramid attention as an mmagic plugin."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    """Read ``__version__`` from panet_mm/version.py without importing the package."""
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'panet_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='panet_mm',
    version=read_version(),
    description='Pyramid Attention Networks (PANet) for image restoration, as an mmagic plugin',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['panet_mm', 'panet_mm.*']),
    python_requires='>=3.9,<3.12',
    # Bounds true for both tested stacks (requirements/constraints.txt: torch 2.5.1, numpy 1.26;
    # requirements/constraints-modern.txt: torch 2.14.1, numpy 2.4). torch >= 2.5 for scoped weights-only
    # loading (torch.serialization.safe_globals); numpy 2 works through panet_mm/utils/compat.py;
    # mmagic 1.2.0 asserts 2.0.0 <= mmcv < 2.2.0; mmengine >= 0.10.6 for torch >= 2.5.
    install_requires=[
        'torch>=2.5,<3',
        'numpy>=1.26,<3',
        'opencv-python>=4.11,<5',
        'mmengine>=0.10.6,<0.11',
        'mmcv>=2.0.0,<2.2.0',
        'mmagic>=1.2.0,<1.3',
        'tqdm',
    ],
    extras_require={
        'tests': ['pytest>=7', 'ruff>=0.5', 'scikit-image', 'matplotlib'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
