"""Silences deprecation notices of the OpenMMLab stack that its users cannot act on.

Each filter names one message of one third-party package, raised inside that package's own code
on today's torch / setuptools / numpy (nothing a config or a user's code can change). Every
other warning, ours and the user's included, still shows. Imported first by ``emo_mm`` so that
the filters are in place before mmengine is imported.
"""
import warnings

# (message regex, category, module regex of the code that warns)
THIRD_PARTY_NOTICES = (
    # mmengine.utils.package_utils imports pkg_resources (setuptools deprecates it).
    (r'pkg_resources is deprecated as an API', UserWarning, r''),
    # mmseg's own decode heads build their losses through its deprecated ``build_loss``.
    (r'``build_loss`` would be deprecated soon', UserWarning, r'mmseg\.models\.builder'),
)


def silence_third_party_notices() -> None:
    for message, category, module in THIRD_PARTY_NOTICES:
        warnings.filterwarnings('ignore', message=message, category=category, module=module)


silence_third_party_notices()
