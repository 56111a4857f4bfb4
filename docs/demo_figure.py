"""Draw docs/images/demo_segment.png: the ``pix2pix-unet demo`` page in headless Chromium after one upload.

Example (a segmenter trained on the built-in nuclei files, then one of its validation tiles)::

    python datasets/make_synthetic.py --kind nuclei --out data/nuclei --num-train 20 --num-val 8
    python train_gan.py --task segment --data data/nuclei --output-dir runs/nuclei --max-steps 400 --no-wandb \\
        segment.instances=on generator.in_channels=1 segment.intensity=image generator.depth=4 \\
        generator.base_channels=16 generator.max_channels=64 batch_size=4 sample_every=400 \\
        checkpoint_every=400 log_every=50
    python docs/demo_figure.py --checkpoint runs/nuclei --image data/nuclei/val/images/00000.tif \\
        --out docs/images/demo_segment.png

Needs the demo extra, selenium, and Debian's ``chromium`` + ``chromium-driver``, as
``tests/test_demo_browser.py`` does. Prints the page's run line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pix2pix_unet.demo import DemoModel, launch  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--force-color-profile=srgb"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--image", type=Path, required=True, help="the file to upload")
    p.add_argument("--out", type=Path, default=Path("docs/images/demo_segment.png"))
    p.add_argument("--size", default="1200,900", help="browser window width,height")
    args = p.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = DemoModel(args.checkpoint)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in FLAGS + [f"--window-size={args.size}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    app = launch(model, block=False)
    browser = webdriver.Chrome(options=options,
                               service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    try:
        browser.get(app.local_url)
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(args.image.resolve()))
        wait.until(lambda b: args.image.stem in b.find_element(By.ID, "upload").text)
        browser.find_element(By.ID, "run").click()
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#info textarea").get_attribute("value"))
        image = browser.find_element(By.CSS_SELECTOR, "#view img")
        wait.until(lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
        time.sleep(1.0)
        info = browser.find_element(By.CSS_SELECTOR, "#info textarea").get_attribute("value")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(args.out))
    finally:
        browser.quit()
        app.close()
        shutil.rmtree(profile, ignore_errors=True)
    print(info)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
