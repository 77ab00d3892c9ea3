"""Thin adapters from :class:`hwlat.Oracle` to NAS searchers (each imports its library lazily).

=================  ==========================================================================
module             what it gives
=================  ==========================================================================
``optuna``         ``trial.set_constraint`` (Optuna ≥ 5) / ``constraints_func`` (older), ask/tell batches
``pymoo``          a vectorised ``Problem`` whose ``_evaluate`` fills ``out["G"]`` from ``oracle.batch``
``nevergrad``      a parametrization with a cheap constraint, and ``tell`` violations
``nni``            a ``Profiler`` and a ``Filter`` function for NNI 3 strategies
``archai``         ``ModelEvaluator`` / ``AsyncModelEvaluator`` (seconds) and an evolutionary search space
``dynast``         a DyNAS-T runner (``estimate_latency`` / ``measure_latency``) and evaluation interface
``ofa``            OFA-style evolution helpers (``get_efficiency`` / ``predict_efficiency``)
=================  ==========================================================================

All of them search over the flat parameters of :mod:`hwlat.adapters.params` (``ks_0``, ``e_3``,
``d_1``, ``r`` …), which the oracle reads directly.
"""
