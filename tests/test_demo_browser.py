"""``pix2pix-unet demo`` in a real headless browser: Debian's chromium driven by Selenium.

The page is loaded, a 16-bit gray TIFF uploaded through the file input, the Run
button clicked; once the output is shown a screenshot is saved and checked to
show it. The segmenter's head is set so that every pixel is class 1, so the
overlay's colour is known (half the class-1 palette colour over a black image)
and absent from the page before the run.

Needs ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``; ``.ci/run`` installs them when it runs as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.io import palette, read_image, write_image
from pix2pix_unet.models import UNet

pytest.importorskip("gradio", reason="the demo extra: pip install '.[demo]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium: pip install '.[dev]'")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pix2pix_unet.demo import DemoModel, launch  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,  # drives a browser
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                                        "chromium-driver)")]

# The closed network of the test machines: no sandbox, GPU, QUIC, sync or component updates.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--force-color-profile=srgb", "--window-size=1280,1000"]


def constant_segmenter(path: Path, num_classes: int = 4, winner: int = 1) -> Path:
    """A tiny segment export whose every pixel is class ``winner``: the head's weights are zero and its bias
    favours that class."""
    torch.manual_seed(0)
    generator = UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 4, "max_channels": 16, "in_channels": 1,
                                            "out_channels": num_classes, "final_activation": "none"}))
    conv = [m for m in generator.head.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[winner] = 5.0
    generator.save_pretrained(path, task="segment", num_classes=num_classes, direction="BtoA", intensity="dtype")
    return path


def colour_pixels(picture: np.ndarray, colour: np.ndarray, tolerance: int = 6) -> int:
    """How many pixels of an ``(H, W, 3)`` picture are within ``tolerance`` of ``colour`` in every channel."""
    return int((np.abs(picture[..., :3].astype(int) - colour.astype(int)) <= tolerance).all(-1).sum())


def painted(picture: np.ndarray, colour: np.ndarray) -> bool:
    """Whether a screenshot shows the 240 x 320 overlay: a block of its colour at least half its size."""
    return colour_pixels(picture, colour) >= 0.5 * 240 * 320


def test_browser_uploads_a_16bit_tiff_and_shows_the_overlay(tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    model = DemoModel(constant_segmenter(tmp_path / "seg"), tmp_path / "work")
    upload = tmp_path / "cells.tif"
    write_image(upload, np.zeros((240, 320, 1), np.uint16))  # black: the overlay is half the class colour
    expected = np.rint(palette(4)[1].astype(np.float64) * 0.5).astype(np.uint8)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    app = launch(model, block=False)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        browser.set_page_load_timeout(60)
        # 1. load the page: the upload and the Run button are there, no overlay yet
        browser.get(app.local_url)
        wait = WebDriverWait(browser, 60)
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
        browser.save_screenshot(str(tmp_path / "before.png"))
        assert colour_pixels(read_image(tmp_path / "before.png").pixels, expected) == 0
        # 2. upload, wait until gradio has it, run
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
        wait.until(lambda b: "cells" in b.find_element(By.ID, "upload").text)  # name and size listed
        browser.find_element(By.ID, "run").click()
        # 3. wait for the output: the overlay image, and the run line naming the file written
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#view img"))
        wait.until(lambda b: "cells.png on cpu" in b.find_element(By.CSS_SELECTOR, "#info textarea")
                   .get_attribute("value"))
        image = browser.find_element(By.CSS_SELECTOR, "#view img")
        wait.until(lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
        wait.until(lambda b: image.size["height"] >= 200)  # laid out, not a thumbnail
        # painted some time after it is laid out (a fixed 0.5-s pause can lose that race on a busy machine): take
        # screenshots until one shows it; the assert below says what the last one held
        shot = tmp_path / "demo_screenshot.png"
        try:
            wait.until(lambda b: b.save_screenshot(str(shot)) and painted(read_image(shot).pixels, expected))
        except TimeoutException:
            pass
        download = "".join(browser.find_element(By.ID, "files").text.split())  # the name wraps
    finally:
        browser.quit()
        app.close()
    # 4. the screenshot shows the overlay: a block of its colour at least half the image's size
    assert painted(read_image(shot).pixels, expected), (expected, shot)
    assert "cells.png" in download  # the label map is offered for download
