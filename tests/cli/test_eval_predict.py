"""``dltool eval`` and ``dltool predict`` on a trained run's checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from dltool.datasets import FashionMNIST
from tests.cli.conftest import ok


def test_eval_prints_and_writes_metrics_beside_the_checkpoint(dltool: Callable, trained_run: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    result = ok(dltool("eval", f"checkpoint={checkpoint}"))
    report = json.loads((trained_run / "checkpoints" / "best.test.json").read_text())
    assert report["split"] == "test" and report["samples"] == 10000
    matrix = np.array(report["confusion_matrix"]["counts"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000 and (matrix.sum(axis=1) == 1000).all()
    assert report["acc"] == np.trace(matrix) / 10000
    per_class = report["per_class_acc"]
    assert (
        list(per_class) == report["confusion_matrix"]["classes"]
        and per_class["Trouser"] == matrix[1, 1] / 1000
    )
    for text in ("loss", "acc", "confusion matrix", "1 Trouser", "support", f"{report['acc']:.4f}"):
        assert text in result.stdout
    with Image.open(trained_run / "checkpoints" / "best.test.confusion_matrix.png") as picture:
        assert picture.format == "PNG" and picture.width > 10 * 36 and picture.height > 10 * 36


def test_eval_on_the_validation_split(dltool: Callable, trained_run: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    ok(dltool("eval", f"checkpoint={checkpoint}", "split=val", "batch_size=500"))
    report = json.loads((trained_run / "checkpoints" / "last.val.json").read_text())
    assert report["samples"] == 6000 and sum(map(sum, report["confusion_matrix"]["counts"])) == 6000


def test_predict_prints_top_k_classes(
    dltool: Callable, trained_run: Path, tmp_path: Path, data_root: Path
) -> None:
    test = FashionMNIST(data_root, train=False)
    paths = []
    for i in range(3):
        image, _ = test[i]
        paths.append(tmp_path / f"item{i}.png")
        image.save(paths[-1])
    rgb = tmp_path / "big.png"  # another size and mode: converted like the dataset's images
    Image.fromarray(np.zeros((50, 40, 3), dtype=np.uint8)).save(rgb)
    result = ok(
        dltool(
            "predict",
            f"checkpoint={trained_run / 'checkpoints' / 'best.ckpt'}",
            f"inputs=[{','.join(p.name for p in paths)},big.png]",
            "topk=2",
        )
    )
    assert "top-2 predictions" in result.stdout
    for path in [*paths, rgb]:
        assert path.name in result.stdout
    assert result.stdout.count("%)") == 8  # two classes with probabilities per input


def test_predict_uses_the_dataset_transforms(trained_run: Path, tmp_path: Path, data_root: Path) -> None:
    import dltool.engine as dl
    from dltool.training.builders import build, build_task
    from dltool.training.checkpoint import load_checkpoint, load_model_state
    from dltool.training.predict import predict

    checkpoint_path = trained_run / "checkpoints" / "best.ckpt"
    raw = FashionMNIST(data_root, train=False)
    for i in range(8):
        raw[i][0].save(tmp_path / f"{i}.png")
    inputs = [str(tmp_path / f"{i}.png") for i in range(8)]
    results = predict(
        OmegaConf.create(
            {
                "checkpoint": str(checkpoint_path),
                "inputs": inputs,
                "topk": 1,
                "device": None,
                "trust_checkpoint_code": False,
            }
        )
    )

    checkpoint = load_checkpoint(checkpoint_path)
    run_cfg = OmegaConf.create(checkpoint["config"])
    task = build_task(run_cfg, checkpoint["meta"]["classes"], "cpu")
    load_model_state(task, checkpoint["model"], checkpoint_path)
    model = task.model.eval()
    data = FashionMNIST(data_root, train=False, transform=build("transform", run_cfg.dataset.transform))
    with dl.no_grad():
        expected = model(dl.stack([data[i][0] for i in range(8)])).argmax(dim=1).tolist()
    assert [r["top"][0]["index"] for r in results] == expected
