"""Packaging for panet_mm: PANet pyramid attention as an mmagic plugin."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
# What an installed panet_mm carries besides its modules, under panet_mm/.mim/ (OpenMMLab's layout):
# configs/ (so that `_base_ = 'panet_mm::panet/<config>.py'` resolves from any directory), tools/ (run by
# the panet-* console scripts) and model-index.yml (the index of configs/panet/metafile.yml).
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    """Read ``__version__`` from panet_mm/version.py without importing the package."""
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'panet_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildPyWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_ITEMS` into ``panet_mm/.mim/`` of the build.

    Unlike mmagic's ``add_mim_extension`` it writes only into the build directory, never into the source
    tree, and starts from an empty ``.mim`` so that files deleted from the checkout leave the wheel too.
    Editable installs keep using the checkout (the console scripts find ``tools/`` next to the package).
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = osp.join(self.build_lib, 'panet_mm', '.mim')
        if osp.isdir(target):
            shutil.rmtree(target)
        os.makedirs(target)
        skip = shutil.ignore_patterns('__pycache__', '*.pyc')
        for item in MIM_ITEMS:
            src = osp.join(ROOT, item)
            if osp.isdir(src):
                shutil.copytree(src, osp.join(target, item), ignore=skip)
            elif osp.isfile(src):
                shutil.copyfile(src, osp.join(target, item))
            else:
                raise FileNotFoundError(f'{src} is missing: panet_mm/.mim needs {", ".join(MIM_ITEMS)}')


setup(
    name='panet_mm',
    version=read_version(),
    description='Pyramid Attention Networks (PANet) for image restoration, as an mmagic plugin',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['panet_mm', 'panet_mm.*']),
    # the fused CPU step's source, compiled on first use (panet_mm/ops/native.py)
    package_data={'panet_mm.ops': ['csrc/*.cpp']},
    python_requires='>=3.9,<3.12',
    # Bounds true for both tested stacks (requirements/constraints.txt: torch 2.5.1, numpy 1.26;
    # requirements/constraints-modern.txt: torch 2.14.1, numpy 2.4, opencv 5.1). torch >= 2.5 for scoped weights-only
    # loading (torch.serialization.safe_globals); numpy 2 works through panet_mm/utils/compat.py;
    # mmagic 1.2.0 asserts 2.0.0 <= mmcv < 2.2.0; mmengine >= 0.10.6 for torch >= 2.5.
    install_requires=[
        'torch>=2.5,<3',
        'numpy>=1.26,<3',
        'opencv-python>=4.11,<6',
        'mmengine>=0.10.6,<0.11',
        'mmcv>=2.0.0,<2.2.0',
        'mmagic>=1.2.0,<1.3',
        'tqdm',
    ],
    extras_require={
        'tests': ['pytest>=7', 'ruff>=0.5', 'scikit-image', 'matplotlib', 'onnx', 'onnxruntime'],
        # torch.onnx.export of the models at opset >= 18 and running the result (README "Attention speed and memory")
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],  # onnxscript: torch's dynamo exporter (dynamic H/W)
        # optional visualisation back-ends (README "Logging to TensorBoard or Weights & Biases")
        'tensorboard': ['tensorboard'],
        'wandb': ['wandb'],
    },
    entry_points={
        'console_scripts': [
            'panet-train = panet_mm.tools_entry:train',
            'panet-test = panet_mm.tools_entry:test',
            'panet-restore = panet_mm.tools_entry:restore',
            'panet-convert = panet_mm.tools_entry:convert',
        ],
    },
    cmdclass={'build_py': BuildPyWithMim},
    license='Apache-2.0',
    license_files=['LICENSE'],
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
    zip_safe=False,
)
