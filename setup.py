from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path('emo_mm/version.py').read_text(), version)

setup(
    name='emo-mm',
    version=version['__version__'],
    description='EMO (ICCV 2023) and EfficientMod (ICLR 2024) backbones for MMDetection 3.x and '
                'MMSegmentation 1.x',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['emo_mm', 'emo_mm.*']),
    python_requires='>=3.10',  # torch 2.13's wheels
    # Ranges an installed torch 2.x satisfies, so no second torch is pulled in. mmcv must be
    # built with its ops (see tools/install.sh): pip cannot express that.
    install_requires=[
        'torch>=2.1',  # tested: 2.1.2 (oldest) and 2.13.0 (newest)
        'numpy',
        'mmengine>=0.10.0,<0.11',
        'mmcv>=2.0.0,<2.2.0',
    ],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4'],
        'seg': ['mmsegmentation>=1.2.2,<1.3', 'ftfy', 'regex'],
        'tests': ['pytest', 'pytest-xdist', 'matplotlib'],
        # ONNX export (tools/export_onnx.py) and onnxruntime inference (emo_mm.deploy).
        'deploy': ['onnx>=1.14', 'onnxruntime>=1.16'],
        # OpenVINO as a second runtime of the same .onnx files (backend='openvino').
        'openvino': ['onnx>=1.14', 'openvino>=2026.4'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
