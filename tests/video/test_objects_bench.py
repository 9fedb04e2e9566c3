"""``ivos-bench objects`` on a tiny clip: one fine-tune per object, shared across counts, and
every count propagated over every frame."""
import numpy as np


def test_measure_counts_every_frame_and_sums_heads(osvos_bundle, make_clip):
    import ivos
    from ivos.bench.objects import markdown, measure, object_masks

    frames, masks = make_clip(n=4, h=40, w=56)
    copies = object_masks(masks[0], 4)
    assert len(copies) == 4 and all(c.shape == masks[0].shape for c in copies)
    assert np.array_equal(copies[0], masks[0]) and not np.array_equal(copies[1], masks[0])
    vp = ivos.VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                             finetune_config=ivos.FinetuneConfig(steps=3, augmentations=2, threads=1))
    rows = measure(vp, frames, masks[0], [1, 2, 4])
    assert [r["objects"] for r in rows] == [1, 2, 4] and all(r["frames"] == 3 for r in rows)
    assert rows[0]["finetune_s"] < rows[1]["finetune_s"] < rows[2]["finetune_s"]  # sums of 1, 2, 4 heads
    text = markdown({"command": "c", "sequence": "s", "frames": 4, "size": "56x40", "osvos": "o", "backend": "b",
                     "threads": 1, "machine": "m", "rows": rows})
    assert "| 4 |" in text
