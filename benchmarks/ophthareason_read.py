"""Reading OphthaReason's five files: `evaluation.ophthareason_samples` against eval.py's own loading.

Run: `.venv/bin/python benchmarks/ophthareason_read.py [--records 1000 4000] [--image-kb 250]`

A synthetic `ophthareason-eval` folder per size: `records` single-choice CFP records, one image each, every
image its own CSV row (a noise JPEG of about `image-kb` KB, the size of a compressed fundus photograph, its
bytes made unique per key by a JPEG comment), plus a complex_reason file with a tenth as many two-image
records. Each reader runs in a fresh process that reports its wall time and peak RSS:
- `ophthareason_samples`: JSON streamed with ijson, the CSV indexed by byte offset, one record's images
  decoded at a time (each sample dropped once read, as the run's bounded queue does);
- `eval.py`: its loading loop as written (json.load, pd.read_csv(index_col=0).to_dict()["base64"], and every
  message with its base64 strings kept in `datas` before the model starts).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    reader, folder = sys.argv[1], Path(sys.argv[2])
    import pandas as pd
    from retinal_reason_data.evaluation.ophthareason import QUESTION_DICT, SYSTEM_PROMPT, ophthareason_samples
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    count = 0
    if reader == "ophthareason_samples":
        skipped = []
        for sample in ophthareason_samples(folder, skipped):
            count += 1
        assert not skipped, skipped[:3]
    else:
        datas = {}
        for ds, key in (("single_choice_test_data_CFP", "SINGLE"), ("complex_reason", "COMPLEX")):
            data = json.load(open(folder / f"{ds}.json"))
            base64_dict = pd.read_csv(folder / f"{ds}.csv", index_col=0).to_dict()["base64"]
            datas[ds] = []
            for x in data:
                images = [base64_dict[img] for img in x["image"]]
                text = QUESTION_DICT[key].format(Question=x["conversations"][0]["value"])
                message = [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
                           {"role": "user", "content": [{"type": "text", "text": text}] + [
                               {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b}"}}
                               for b in images]}]
                datas[ds].append([message, x["conversations"][0]["value"], x["conversations"][1]["value"], x["image"]])
                count += 1
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": count, "s": seconds, "peak_mb": peak, "growth_mb": peak - base}))
    """
)


def noise_jpeg(target_kb: int, seed: int = 0) -> bytes:
    """A JPEG of random noise of about `target_kb` KB (noise does not compress: like a detailed photograph)."""
    side = int((target_kb * 1024 / 0.9) ** 0.5)  # noise at quality 90: about 0.9 bytes per pixel
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def unique(jpeg: bytes, index: int) -> bytes:
    comment = f"key {index:09d}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def write_folder(folder: Path, records: int, image_kb: int) -> int:
    """The five-file layout with `records` single-choice and records // 10 complex records; bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = noise_jpeg(image_kb)
    question = "What is the diabetic retinopathy grade of this colour fundus photograph?\nA. None\nB. Mild\nC. Severe"
    key = 0
    for name, count, per_record, answer in (
        ("single_choice_test_data_CFP", records, 1, "B"),
        ("complex_reason", records // 10, 2, "Choroidal melanoma"),
    ):
        with (folder / f"{name}.csv").open("w") as table, (folder / f"{name}.json").open("w") as entries:
            table.write("image,base64\n")
            entries.write("[\n")
            for index in range(count):
                keys = []
                for _ in range(per_record):
                    keys.append(f"{key:016x}.jpg")
                    table.write(f"{keys[-1]},{base64.b64encode(unique(jpeg, key)).decode()}\n")
                    key += 1
                conversations = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
                record = {"id": f"{name[:6]}{index:08d}", "image": keys, "conversations": conversations}
                entries.write(("," if index else "") + json.dumps(record) + "\n")
            entries.write("]\n")
    return sum(path.stat().st_size for path in folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--image-kb", type=int, default=250)
    args = parser.parse_args()
    print("| reader | records | files MB | s | records/s | peak RSS MB | growth MB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="ophthareason_read_") as scratch:
        for records in args.records:
            folder = Path(scratch) / f"eval_{records}"
            size = write_folder(folder, records, args.image_kb)
            for reader in ("ophthareason_samples", "eval.py"):
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, "-c", PROBE, reader, str(folder)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{reader} failed:\n{out.stderr}")
                result = json.loads(out.stdout)
                print(
                    f"| {reader} | {result['records']:,} | {size / 1e6:,.0f} | {result['s']:.1f} | "
                    f"{result['records'] / result['s']:,.0f} | {result['peak_mb']:,.0f} | {result['growth_mb']:,.0f} "
                    f"| {load:.1f} |"
                )


if __name__ == "__main__":
    main()
