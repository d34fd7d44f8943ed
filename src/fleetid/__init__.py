"""fleetid: device identity at fleet scale.

The package is layered (see ``docs/architecture.md``): edges (``cli``, ``api``) call services
(``factory``, ``authority``, ``revocation``, ``device``, ``sim``), which use ``policy``,
``formats``, ``crypto`` and ``store``, and reach the two tamper boundaries (``se``, ``hsm``) only
through their narrow interfaces.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
