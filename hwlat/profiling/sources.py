"""Where profiling items come from: a folder of models, a kernel suite, a search space, the zoo."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.export.formats import SUFFIX, export_module, export_seeded, format_for
from hwlat.paths import profiles_root
from hwlat.profiling.export_cache import released_sha
from hwlat.profiling.items import Item

if TYPE_CHECKING:
    from hwlat.kernels.base import Kernel

Tick = Callable[[int, int], None]
log = logging.getLogger("hwlat")


def cache_dir(kind: str, fmt: str) -> Path:
    """Exported models are cached by content key under ``<profiles>/.cache`` (see
    :mod:`hwlat.profiling.export_cache`: released once measured, exported again on demand)."""
    return profiles_root() / ".cache" / kind / fmt


def kernel_items(suite: str, runtime: str, seed: int = 0, tick: Tick | None = None,
                 types: Collection[str] | None = None) -> list[Item]:
    """Items for every kernel of a benchmark suite (``quick``, ``standard``, ``full``), or of its
    kernel ``types`` only."""
    from hwlat.kernels.suites import suite as make_suite

    kernels = make_suite(suite, seed=seed)
    if types is not None:
        kernels = [k for k in kernels if k.type in types]
    return items_for_kernels(kernels, runtime, tick=tick)


def _export_tflite_kernel(kernel: Kernel, folder: Path, quantize: str | None) -> Path:
    """One kernel exported again to tflite after the cache released it."""
    from hwlat.errors import ModelFileError
    from hwlat.export.tflite_export import export_kernels
    from hwlat.kernels.export import kernel_hash

    o = export_kernels([kernel], folder, quantize=quantize, workers=1)[0]
    if o.path is None:
        raise ModelFileError(f"kernel {kernel.type} {kernel_hash(kernel)} could not be exported to tflite "
                             f"again ({o.error}); run `hwlat cache clear --kind kernels` and profile again")
    return o.path


def items_for_kernels(kernels: Sequence[Kernel], runtime: str, tick: Tick | None = None) -> list[Item]:
    """Items for ``kernels`` in the runtime's format, exported now unless a run already measured and
    released them (then each is exported again only if it is measured again)."""
    from hwlat.kernels.export import export_kernel, export_path

    fmt = format_for(runtime)
    if fmt.startswith("tflite"):
        import hwlat.export.tflite_export  # noqa: F401  (registers the tflite kernel exporters)
    folder = cache_dir("kernels", fmt)
    paths = {i: export_path(k, fmt, folder) for i, k in enumerate(kernels)}
    fresh = [i for i in paths if released_sha(paths[i]) is None]
    export: Callable[[Kernel], object]
    if fmt.startswith("tflite"):
        # litert-torch takes seconds per model: convert in parallel worker processes, skip failures
        from hwlat.export.tflite_export import export_kernels

        quantize = "int8" if fmt == "tflite_int8" else None
        outcomes = export_kernels([kernels[i] for i in fresh], folder, quantize=quantize)
        failed = [o for o in outcomes if o.path is None]
        if failed:  # reported, never silently dropped
            log.warning("%d of %d kernels could not be exported to %s and are skipped; first: %s: %s",
                        len(failed), len(outcomes), fmt, failed[0].kernel.type, failed[0].error)
        bad = {i for i, o in zip(fresh, outcomes) if o.path is None}
        kernels_ok = [(i, k) for i, k in enumerate(kernels) if i not in bad]
        export = partial(_export_tflite_kernel, folder=folder, quantize=quantize)
    else:
        for i in fresh:
            export_kernel(kernels[i], fmt, folder)
        kernels_ok = list(enumerate(kernels))
        export = partial(export_kernel, fmt=fmt, out_dir=folder)
    out = []
    for i, k in kernels_ok:
        path = paths[i]
        out.append(Item(table="kernels", name=f"{k.type}:{path.stem}", file=path,
                        kernel_type=k.type, config=dict(k.config), export=partial(export, k)))
        if tick:
            tick(len(out), len(kernels_ok))
    return out


def _sample_archs(space: object, samples: int, seed: int) -> list:
    """``samples`` distinct canonical archs drawn with ``seed`` (the draw every space source shares)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    archs = []
    tries = 0
    while len(archs) < samples and tries < samples * 20:
        tries += 1
        arch = space.canonical(space.sample(rng))
        key = space.key(arch)
        if key not in seen:
            seen.add(key)
            archs.append(arch)
    return archs


def subnet_path(space: Any, arch: object, fmt: str, folder: Path) -> Path:
    """Where :func:`subnet_file` exports the subnet ``arch`` of ``space`` in ``folder``."""
    digest = hashlib.sha256(f"{space.name}:{space.key(arch)}".encode()).hexdigest()[:16]
    return folder / f"{space.name}-{digest}.{SUFFIX[fmt]}"


def subnet_file(space: Any, arch: object, fmt: str, folder: Path) -> Path:
    """The subnet ``arch`` of ``space`` exported as ``fmt`` in ``folder`` (once: the name is the
    arch's digest and the weights are seeded by it, so a subnet is the same file, and the same store
    item, wherever it is exported)."""
    path = subnet_path(space, arch, fmt, folder)
    if not path.exists():
        export_seeded(partial(space.build, arch), space.input_shape(arch), fmt, path, path.name)
    return path


def space_items(space_name: str, samples: int, runtime: str, seed: int = 0,
                tick: Tick | None = None) -> list[Item]:
    """Items for ``samples`` distinct random subnets of a search space (exported now unless a run
    already measured and released them)."""
    from hwlat.spaces import get_space

    space = get_space(space_name)
    fmt = format_for(runtime)
    folder = cache_dir(f"spaces/{space_name}", fmt)
    out = []
    for arch in _sample_archs(space, samples, seed):
        export = partial(subnet_file, space, arch, fmt, folder)
        path = subnet_path(space, arch, fmt, folder)
        sha = released_sha(path)
        if sha is None:
            export()
        out.append(Item(table="models", name=path.name, file=path, space=space_name, arch=arch, _sha=sha,
                        export=export))
        if tick:
            tick(len(out), samples)
    return out


def arch_kernels(space_name: str, arch: object, runtime: str) -> tuple[list[Kernel], list[dict]]:
    """(kernels, unsupported operators) of one subnet as ``runtime`` fuses them: onnxruntime uses the
    space's encoder (no tracing); other runtimes decompose the built module."""
    from hwlat.decompose import kernels_of, runtimes
    from hwlat.spaces import get_space

    space = get_space(space_name)
    if runtime == "onnxruntime":
        return list(space.encode(arch)), []
    rt = runtime if runtime in runtimes() else "onnxruntime"
    dec = kernels_of(space.build(arch), space.input_shape(arch), runtime=rt)
    return list(dec.kernels), list(dec.unsupported)


def _distinct(kernel_lists: Iterable[Sequence[Kernel]]) -> list[Kernel]:
    """The distinct kernels of several kernel lists, in first-seen order."""
    seen: dict[str, Kernel] = {}
    for ks in kernel_lists:
        for k in ks:
            seen.setdefault(k.key(), k)
    return list(seen.values())


def subnet_kernels(space_name: str, archs: Sequence[object], runtime: str) -> list[Kernel]:
    """Distinct kernels of subnets of a space, in first-seen order, as ``runtime`` fuses them."""
    return _distinct(arch_kernels(space_name, arch, runtime)[0] for arch in archs)


def space_kernel_items(space_name: str, samples: int, runtime: str, seed: int = 0,
                       tick: Tick | None = None) -> list[Item]:
    """Items for the distinct kernels of the ``samples`` subnets :func:`space_items` draws with
    ``seed``, each measured alone: the space's own kernels for the kernel-level predictor."""
    from hwlat.spaces import get_space

    archs = _sample_archs(get_space(space_name), samples, seed)
    return items_for_kernels(subnet_kernels(space_name, archs, runtime), runtime, tick=tick)


def _model_decomposition(it: Item, runtime: str) -> tuple[list[Kernel], list[dict]] | str:
    """(kernels, unsupported operators) of a whole model ``it`` as ``runtime`` fuses them, or why
    there are none. Decomposition reads ONNX: a .tflite/.pt2 model is decomposed from its ONNX
    export beside it."""
    from hwlat import zoo
    from hwlat.decompose import kernels_of, runtimes
    from hwlat.errors import HwlatError

    rt = runtime if runtime in runtimes() else "onnxruntime"
    onnx_file = it.ensure_file() if it.file.suffix.lower() == ".onnx" else it.file.with_suffix(".onnx")
    try:
        if onnx_file.is_file():
            dec = kernels_of(onnx_file, runtime=rt)
        elif it.space == "zoo":
            dec = kernels_of(*zoo.get(str(it.arch)), runtime=rt)
        else:
            return f"its kernels are read from ONNX: put its ONNX export {onnx_file.name} beside it"
    except HwlatError as e:
        return str(e)
    return list(dec.kernels), list(dec.unsupported)


def model_kernel_items(models: Sequence[Item], runtime: str, tick: Tick | None = None
                       ) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items for the distinct kernels of whole ``models`` (ONNX files, zoo models), each measured
    alone as ``runtime`` fuses them, so the kernel predictor learns the networks a user cares about;
    and ``(model, reason)`` for each model that could not be decomposed (its own measurement stands)."""
    lists: list[list[Kernel]] = []
    skipped: list[tuple[str, str]] = []
    for it in models:
        dec = _model_decomposition(it, runtime)
        if isinstance(dec, str):
            skipped.append((it.name, dec))
        else:
            lists.append(dec[0])
    return items_for_kernels(_distinct(lists), runtime, tick=tick), skipped


def file_kernels_path(sha256: str, runtime: str, root: Path | None = None) -> Path:
    """Where the kernel list of a user's model file (by content) is kept for training; a new
    decomposition version makes training ask for it to be recorded again."""
    from hwlat.decompose import DECOMPOSITION_VERSION
    from hwlat.decompose.records import records_dir

    return records_dir(root or profiles_root(), runtime) / f"file-{sha256[:16]}-v{DECOMPOSITION_VERSION}.json"


def record_model_kernels(models: Sequence[Item], runtime: str) -> list[tuple[str, str]]:
    """Write the kernel list of each user model file (not a subnet or zoo model) where training
    finds it by the file's content, so its whole-model measurement trains the device's overhead
    term like the subnets' do. Returns ``(model, reason)`` for each that could not be decomposed."""
    from hwlat.decompose.records import readable_kernel_list, write_kernel_list

    skipped = []
    for it in models:
        if it.table != "models" or it.space is not None:
            continue  # subnets and zoo models are rebuilt from their arch at training time
        path = file_kernels_path(it.sha256, runtime)
        if path.is_file() and readable_kernel_list(path):
            continue
        dec = _model_decomposition(it, runtime)
        if isinstance(dec, str):
            skipped.append((it.name, dec))
            continue
        write_kernel_list(path, *dec)
    return skipped


def zoo_file(name: str, fmt: str, folder: Path | None = None) -> Path:
    """Zoo model ``name`` exported as ``fmt`` in ``folder`` (default: the export cache), unless it is there."""
    from hwlat import zoo

    path = (folder or cache_dir("zoo", fmt)) / f"{name}.{SUFFIX[fmt]}"
    if not path.exists():
        module, shape = zoo.get(name)  # seeded: the same weights, so the same file, every time
        export_module(module, shape, fmt, path)
    return path


def zoo_items(runtime: str, names: list[str] | None = None, tick: Tick | None = None) -> list[Item]:
    """Items for the model zoo (classic networks written in code), exported now unless a run already
    measured and released them."""
    from hwlat import zoo

    fmt = format_for(runtime)
    names = names or zoo.names()
    out = []
    for i, name in enumerate(names):
        export = partial(zoo_file, name, fmt)
        path = cache_dir("zoo", fmt) / f"{name}.{SUFFIX[fmt]}"
        sha = released_sha(path)
        if sha is None:
            export()
        out.append(Item(table="models", name=name, file=path, space="zoo", arch=name, _sha=sha, export=export))
        if tick:
            tick(i + 1, len(names))
    return out


def corpus_path(spec: Any, fmt: str, folder: Path | None = None) -> Path:
    """Where :func:`corpus_file` exports corpus model ``spec`` (a :class:`hwlat.corpus.ModelSpec`)."""
    # under spaces/: the export cache releases these once measured and they are exported again on demand
    return (folder or cache_dir("spaces/corpus", fmt)) / f"{spec.name}.{SUFFIX[fmt]}"


def corpus_file(spec: Any, fmt: str, folder: Path | None = None) -> Path:
    """Corpus model ``spec`` exported as ``fmt``, unless it is there (weights are seeded by the spec, so
    it is the same file, and the same store item, wherever it is exported). A non-ONNX export gets its
    ONNX export beside it too: kernel lists are decomposed from ONNX."""
    from hwlat import corpus

    path = corpus_path(spec, fmt, folder)
    if not path.exists():
        export_module(corpus.build(spec), spec.input_shape, fmt, path)
    onnx_path = path.with_suffix(".onnx")
    if fmt != "onnx" and not onnx_path.exists():
        export_module(corpus.build(spec), spec.input_shape, "onnx", onnx_path)
    return path


def corpus_items(families: Sequence[str], samples: int, runtime: str, seed: int = 0,
                 tick: Tick | None = None, resolution: int | None = None) -> list[Item]:
    """Items for ``samples`` corpus models spread evenly over ``families`` (:func:`hwlat.corpus.balanced`:
    more samples later keep these), exported now unless a run already measured and released them.

    They are stored as model files (no space) whose arch is the spec, family included, so training
    reads the kernel list recorded for the file, as it does for a user's models. ``resolution``
    fixes every model's input size (drawn per model when None).
    """
    from hwlat import corpus

    fmt = format_for(runtime)
    out = []
    for spec in corpus.balanced(list(families), samples, seed, resolution):
        export = partial(corpus_file, spec, fmt)
        path = corpus_path(spec, fmt)
        sha = released_sha(path)
        if sha is None:
            export()
        out.append(Item(table="models", name=path.name, file=path, arch=spec.to_dict(), _sha=sha,
                        export=export))
        if tick:
            tick(len(out), samples)
    return out
