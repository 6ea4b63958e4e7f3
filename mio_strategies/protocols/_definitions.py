"""The protocols as data: three-task, five-task, CDD-11 and the seed paper's seven-task MiO setting.

Every layout, count, convention and published number here was read from the named source (the
public code and READMEs of PromptIR, AdaIR, MoCE-IR and OneRestore, and the seed paper). Counts that
no source read for this library states are ``None``: ``data check`` then checks pairing, not counts.
"""

from __future__ import annotations

from mio_strategies.protocols._spec import (
    DatasetInfo,
    Evaluation,
    Folder,
    Protocol,
    ProtocolTask,
    ReferenceRow,
    TestSet,
    TrainPreset,
)

_PROMPTIR_README = "PromptIR README, results table (prompt-ir-results.png; NeurIPS 2023, Table 1)"
_ADAIR_3 = "AdaIR README, 'Three Distinct Degradations' table (figs/adair3d.PNG; ICLR 2025)"
_ADAIR_5 = "AdaIR README, 'Five Distinct Degradations' table (figs/adair5d.PNG; ICLR 2025)"
_MOCE_3 = "MoCE-IR README, Table 1 (assets/results_aio_3.png; CVPR 2025)"
_MOCE_5 = "MoCE-IR README, Table 2 (assets/results_aio_5.png; CVPR 2025)"
_ONERESTORE = ("OneRestore README 'Performance' table (averages) and img_file/metrics_CDD-11_psnr_ssim.xlsx "
               "(per type; ECCV 2024)")

_LIST_NOTE = "PromptIR's and AdaIR's data_dir/ lists"

# -- datasets ---------------------------------------------------------------------------------------
_UNVERIFIED = "not stated in the sources read here: check the download page's terms before redistributing"
_DATASETS = {
    "bsd400-wed": DatasetInfo(
        "BSD400 + Waterloo Exploration Database (WED)",
        ("https://drive.google.com/file/d/1idKFDkAHJGAFDn1OyXZxsTbOSBx9GS8N/view?usp=sharing (BSD400)",
         "https://drive.google.com/file/d/19_mCE_GXfmE5yYsm-HEzuZQqmwMjPpJr/view?usp=sharing (WED, PromptIR's link)",
         "https://drive.google.com/file/d/1e62XGdi5c6IbvkZ70LFq0KLRhFvih7US/view?usp=sharing (WED, AdaIR's link)"),
        _UNVERIFIED,
        "put the 400 BSD400 .jpg and the 4,744 WED .bmp clean images together, flat, in Train/Denoise/",
    ),
    "rain100l": DatasetInfo(
        "Rain100L (training split 'RainTrainL' and the 100 test pairs)",
        ("https://drive.google.com/drive/folders/1-_Tw-LHJF4vh8fpogKgZx1EQ9MhsJI_f?usp=sharing",),
        _UNVERIFIED,
        "training pairs as Train/Derain/rainy/rain-<k>.png and Train/Derain/gt/norain-<k>.png; test pairs as "
        "test/derain/Rain100L/input/<k>.png and test/derain/Rain100L/target/<k>.png (the same name)",
    ),
    "reside-ots": DatasetInfo(
        "RESIDE OTS (outdoor training set)",
        ("https://sites.google.com/view/reside-dehaze-datasets/reside-v0",
         "https://sites.google.com/view/reside-dehaze-datasets/reside-%CE%B2"),
        _UNVERIFIED,
        "hazy images as Train/Dehaze/synthetic/part1..part4/<id>_<A>_<beta>.jpg, clear ones as "
        "Train/Dehaze/original/<id>.jpg (or .png); the protocols train on the 72,135 hazy images listed in "
        "PromptIR's data_dir/hazy/hazy_outside.txt",
    ),
    "sots-outdoor": DatasetInfo(
        "SOTS-outdoor (RESIDE's outdoor test set)",
        ("https://sites.google.com/view/reside-dehaze-datasets/reside-v0",),
        _UNVERIFIED,
        "hazy images as test/dehaze/input/<id>_<A>_<beta>.jpg, clear ones as test/dehaze/target/<id>.png",
    ),
    "bsd68": DatasetInfo(
        "CBSD68 (colour BSD68)",
        ("https://github.com/clausmichele/CBSD68-dataset/tree/master/CBSD68/original",),
        _UNVERIFIED,
        "the 68 clean colour images, flat, in test/denoise/bsd68/ (noise is added by the library, seeded)",
    ),
    "gopro": DatasetInfo(
        "GoPro (Nah et al.)",
        ("https://drive.google.com/file/d/1y_wQ5G5B65HS_mdIjxKYTcnRys_AGh5v/view?usp=sharing",),
        _UNVERIFIED,
        "training pairs as Train/Deblur/blur/<name>.png and Train/Deblur/sharp/<name>.png; test pairs as "
        "test/deblur/gopro/input/<name>.png and test/deblur/gopro/target/<name>.png",
    ),
    "lol": DatasetInfo(
        "LOL-v1 (Wei et al.)",
        ("https://daooshee.github.io/BMVC2018website/",),
        _UNVERIFIED,
        "training pairs as Train/Enhance/low/<k>.png and Train/Enhance/gt/<k>.png; test pairs as "
        "test/enhance/lol/input/<k>.png and test/enhance/lol/target/<k>.png",
    ),
    "cdd11": DatasetInfo(
        "CDD-11 (OneRestore's composite degradation dataset)",
        ("https://huggingface.co/datasets/gy65896/CDD-11/tree/main",),
        _UNVERIFIED,
        "train/ and test/, each with clear/ and one folder per type (low, haze, rain, snow, low_haze, low_rain, "
        "low_snow, haze_rain, haze_snow, low_haze_rain, low_haze_snow), images named as in clear/",
    ),
    "mio-train": DatasetInfo(
        "DIV2K + Flickr2K (the seed paper's GT; any folder of clean images works)",
        ("https://data.vision.ee.ethz.ch/cvl/DIV2K/",),
        _UNVERIFIED,
        "clean images, flat, in train/ (cropped to 300x300 sub-images in the paper)",
    ),
    "mio-test": DatasetInfo(
        "a MiO test set written by `mio-strategies degrade` (the paper's MiO100 is not public)",
        ("mio-strategies degrade --input <clean test images> --output <root>/test",),
        "as the clean images used",
        "test/GT/ beside one folder per task (sr, blur, noise, jpeg, rain, haze, lowlight) and manifest.json",
    ),
}


def _datasets(*keys: str) -> dict[str, DatasetInfo]:
    return {k: _DATASETS[k] for k in keys}


# -- three-task and five-task (the PromptIR family) -------------------------------------------------
_DENOISE = ProtocolTask("denoise", "Denoising", ("noise",), "noise", sigmas=(15, 25, 50))
_DERAIN = ProtocolTask("derain", "Deraining", ("rain",), "rain")
_DEHAZE = ProtocolTask("dehaze", "Dehazing", ("haze",), "haze")
_DEBLUR = ProtocolTask("deblur", "Deblurring", ("blur",), "blur")
_LOWLIGHT = ProtocolTask("lowlight", "Low-light enhancement", ("lowlight",), "lowlight")

_TRAIN_COMMON = (
    Folder("train/denoise", "train", "denoise", "Denoise", None, "clean", 5144,
           f"{_LIST_NOTE} (noisy/denoise.txt: 400 BSD400 .jpg + 4,744 WED .bmp)", "bsd400-wed", min_side=128),
    Folder("train/derain", "train", "derain", "Derain/gt", "Derain/rainy", "rain-norain", 200,
           f"{_LIST_NOTE} (rainy/rainTrain.txt)", "rain100l", min_side=128),
    Folder("train/dehaze", "train", "dehaze", "Dehaze/original", "Dehaze/synthetic", "haze-id", 72135,
           f"{_LIST_NOTE} (hazy/hazy_outside.txt: 72,135 hazy images of 2,061 clear ones, part1-part4)",
           "reside-ots", recursive=True, min_side=128),
)
_TEST_COMMON = (
    Folder("test/sots", "test", "dehaze", "dehaze/target", "dehaze/input", "haze-id", None,
           "no source read here states SOTS-outdoor's count", "sots-outdoor"),
    Folder("test/rain100l", "test", "derain", "derain/Rain100L/target", "derain/Rain100L/input", "same-name", 100,
           "the set's definition (Rain100L: 100 test pairs)", "rain100l"),
    Folder("test/bsd68", "test", "denoise", "denoise/bsd68", None, "clean", 68,
           "the set's definition (BSD68: 68 images)", "bsd68"),
)
_ROOTS = {"train": ("Train", "data/Train"), "test": ("test", "data/test")}
_PROMPTIR_EVAL = Evaluation(
    color="rgb", border=0, crop_multiple=16, quantize=False, ssim_window="uniform7", noise_seed=0,
    note=(
        "As PromptIR's, AdaIR's and MoCE-IR's test code: images centre-cropped to a multiple of 16 (crop_img), "
        "PSNR on the clamped float RGB output (data range 1, no border crop), SSIM with scikit-image "
        "(PromptIR/AdaIR: its default 7x7 window; MoCE-IR: gaussian_weights=True). Their noisy test inputs come "
        "from one np.random.seed(0) drawn in os.listdir order, so they depend on the file system; here each "
        "image's noise is seeded by its name, the same on every machine."
    ),
)

_THREE_REFS = (
    ReferenceRow("AirNet", "CVPR 2022", _PROMPTIR_README, "rgb",
                 {"sots": (27.94, 0.962), "rain100l": (34.90, 0.967), "bsd68-15": (33.92, 0.933),
                  "bsd68-25": (31.26, 0.888), "bsd68-50": (28.00, 0.797)}, (31.20, 0.910),
                 note="as re-trained and reported by PromptIR (AdaIR's table prints 0.968 on Rain100L)"),
    ReferenceRow("PromptIR", "NeurIPS 2023", _PROMPTIR_README, "rgb",
                 {"sots": (30.58, 0.974), "rain100l": (36.37, 0.972), "bsd68-15": (33.98, 0.933),
                  "bsd68-25": (31.31, 0.888), "bsd68-50": (28.06, 0.799)}, (32.06, 0.913), ssim_window="uniform7"),
    ReferenceRow("AdaIR", "ICLR 2025", _ADAIR_3, "rgb",
                 {"sots": (31.06, 0.980), "rain100l": (38.64, 0.983), "bsd68-15": (34.12, 0.935),
                  "bsd68-25": (31.45, 0.892), "bsd68-50": (28.19, 0.802)}, (32.69, 0.918), ssim_window="uniform7"),
    ReferenceRow("MoCE-IR-S", "CVPR 2025", _MOCE_3, "rgb",
                 {"sots": (30.94, 0.979), "rain100l": (38.22, 0.983), "bsd68-15": (34.08, 0.933),
                  "bsd68-25": (31.42, 0.888), "bsd68-50": (28.16, 0.798)}, (32.57, 0.916), ssim_window="gaussian11"),
    ReferenceRow("MoCE-IR", "CVPR 2025", _MOCE_3, "rgb",
                 {"sots": (31.34, 0.979), "rain100l": (38.57, 0.984), "bsd68-15": (34.11, 0.932),
                  "bsd68-25": (31.45, 0.888), "bsd68-50": (28.18, 0.800)}, (32.73, 0.917), ssim_window="gaussian11"),
)

# PromptIR-size backbone throughput measured by benchmarks/backbone_speed.py on one H200: 3.0 it/s at batch 16
# (the promptir preset); the hours below scale it linearly to batch 32. Estimates, not measurements.
THREE_TASK = Protocol(
    name="three-task",
    title="All-in-one, three degradations (AirNet / PromptIR)",
    description=(
        "Denoising on BSD68 at sigma 15, 25 and 50 (noise added to clean images), deraining on Rain100L, "
        "dehazing on SOTS-outdoor; trained on BSD400 + WED (noise synthesized at the three sigmas), Rain100L's "
        "training split and RESIDE OTS."
    ),
    tasks=(_DENOISE, _DERAIN, _DEHAZE),
    folders=_TRAIN_COMMON + _TEST_COMMON,
    roots=_ROOTS,
    test_sets=(
        TestSet("sots", "SOTS", "test/sots", "dehaze"),
        TestSet("rain100l", "Rain100L", "test/rain100l", "derain"),
        TestSet("bsd68-15", "BSD68 s=15", "test/bsd68", "denoise", sigma=15),
        TestSet("bsd68-25", "BSD68 s=25", "test/bsd68", "denoise", sigma=25),
        TestSet("bsd68-50", "BSD68 s=50", "test/bsd68", "denoise", sigma=50),
    ),
    evaluation=_PROMPTIR_EVAL,
    datasets=_datasets("bsd400-wed", "rain100l", "reside-ots", "sots-outdoor", "bsd68"),
    references=_THREE_REFS,
    preset=TrainPreset(
        order="RNH", periods=6, period_iters=90_000, batch_size=32, patch_size=128, lr=2e-4, optimizer="adamw",
        rationale=(
            "Order: the seed paper's order for U-Net backbones (RJBSNHL) restricted to the protocol's tasks; one "
            "stage per period, then three all-task periods as in the paper's 7 + 3. Budget: PromptIR trains 120 "
            "epochs at batch 4 x 8 over 142,431 items an epoch (5,144 clean images x 3 sigmas x 3, 200 rain pairs x "
            "120, 72,135 hazy images), about 534,000 iterations; 6 x 90,000 = 540,000 at batch 32, patch 128."
        ),
        gpu_hours=("about 100 GPU-hours per strategy on one H200 for a PromptIR-size backbone (estimate: the "
                   "library's measured 3.0 it/s at batch 16 scaled to batch 32; not measured on these data)"),
    ),
    layout_source="PromptIR INSTALL.md (data/Train/{Denoise, Derain/{gt,rainy}, Dehaze/{original,synthetic}}, "
                  "test/{denoise/bsd68, derain/Rain100L/{input,target}, dehaze/{input,target}}) and its "
                  "utils/dataset_utils.py pairing rules",
)

FIVE_TASK = Protocol(
    name="five-task",
    title="All-in-one, five degradations (IDR / AdaIR / MoCE-IR)",
    description=(
        "The three-task protocol plus GoPro deblurring and LOL-v1 low-light enhancement; denoising is scored on "
        "BSD68 at sigma 25 only (training still synthesizes sigma 15, 25 and 50, as AdaIR's and MoCE-IR's "
        "training commands do)."
    ),
    tasks=(_DENOISE, _DERAIN, _DEHAZE, _DEBLUR, _LOWLIGHT),
    folders=_TRAIN_COMMON + (
        Folder("train/deblur", "train", "deblur", "Deblur/sharp", "Deblur/blur", "same-name", None,
               "no source read here states GoPro's count", "gopro", min_side=128),
        Folder("train/lowlight", "train", "lowlight", "Enhance/gt", "Enhance/low", "same-name", None,
               "no source read here states LOL's count", "lol", min_side=128),
    ) + _TEST_COMMON + (
        Folder("test/gopro", "test", "deblur", "deblur/gopro/target", "deblur/gopro/input", "same-name", None,
               "no source read here states GoPro's count", "gopro"),
        Folder("test/lol", "test", "lowlight", "enhance/lol/target", "enhance/lol/input", "same-name", None,
               "no source read here states LOL's count", "lol"),
    ),
    roots=_ROOTS,
    test_sets=(
        TestSet("sots", "SOTS", "test/sots", "dehaze"),
        TestSet("rain100l", "Rain100L", "test/rain100l", "derain"),
        TestSet("bsd68-25", "BSD68 s=25", "test/bsd68", "denoise", sigma=25),
        TestSet("gopro", "GoPro", "test/gopro", "deblur"),
        TestSet("lol", "LOL", "test/lol", "lowlight"),
    ),
    evaluation=_PROMPTIR_EVAL,
    datasets=_datasets("bsd400-wed", "rain100l", "reside-ots", "sots-outdoor", "bsd68", "gopro", "lol"),
    references=(
        ReferenceRow("AirNet", "CVPR 2022", _MOCE_5, "rgb",
                     {"sots": (21.04, 0.884), "rain100l": (32.98, 0.951), "bsd68-25": (30.91, 0.882),
                      "gopro": (24.35, 0.781), "lol": (18.18, 0.735)}, (25.49, 0.847),
                     note="as re-trained and reported by IDR/MoCE-IR (AdaIR's table prints an SSIM average of 0.846)"),
        ReferenceRow("IDR", "", _MOCE_5, "rgb",
                     {"sots": (25.24, 0.943), "rain100l": (35.63, 0.965), "bsd68-25": (31.60, 0.887),
                      "gopro": (27.87, 0.846), "lol": (21.34, 0.826)}, (28.34, 0.893),
                     note="venue not printed in the source table"),
        ReferenceRow("AdaIR", "ICLR 2025", _ADAIR_5, "rgb",
                     {"sots": (30.53, 0.978), "rain100l": (38.02, 0.981), "bsd68-25": (31.35, 0.889),
                      "gopro": (28.12, 0.858), "lol": (23.00, 0.845)}, (30.20, 0.910), ssim_window="uniform7"),
        ReferenceRow("MoCE-IR-S", "CVPR 2025", _MOCE_5, "rgb",
                     {"sots": (31.33, 0.978), "rain100l": (37.21, 0.978), "bsd68-25": (31.25, 0.884),
                      "gopro": (28.90, 0.877), "lol": (21.68, 0.851)}, (30.08, 0.913), ssim_window="gaussian11"),
        ReferenceRow("MoCE-IR", "CVPR 2025", _MOCE_5, "rgb",
                     {"sots": (30.48, 0.974), "rain100l": (38.04, 0.982), "bsd68-25": (31.34, 0.887),
                      "gopro": (30.05, 0.899), "lol": (23.00, 0.852)}, (30.58, 0.919), ssim_window="gaussian11"),
    ),
    preset=TrainPreset(
        order="RBNHL", periods=8, period_iters=95_000, batch_size=32, patch_size=128, lr=2e-4, optimizer="adamw",
        rationale=(
            "Order: the seed paper's U-Net order (RJBSNHL) restricted to the protocol's tasks; five stages, then "
            "three all-task periods. Budget: AdaIR trains 150 epochs at batch 4 x 8 over its repeated five-task "
            "pool (the three-task pool plus GoPro x 5 and LOL x 20), of the order of 760,000 iterations; "
            "8 x 95,000 = 760,000."
        ),
        gpu_hours=("about 140 GPU-hours per strategy on one H200 for a PromptIR-size backbone (estimate: the "
                   "library's measured 3.0 it/s at batch 16 scaled to batch 32; not measured on these data)"),
    ),
    layout_source="AdaIR INSTALL.md (data/Train/{Deblur/{blur,sharp}, Dehaze, Denoise, Derain, Enhance/{gt,low}}, "
                  "data/test/{deblur/gopro, dehaze, denoise/bsd68, derain/Rain100L, enhance/lol}/{input,target}) "
                  "and its utils/dataset_utils.py",
)

# -- CDD-11 ---------------------------------------------------------------------------------------------
_CDD_TYPES = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
              "low_haze_rain", "low_haze_snow")
_CDD_COMPONENT = {"low": "lowlight", "haze": "haze", "rain": "rain", "snow": "rain"}
_CDD_ENTRY = ("lowlight", "haze", "rain")  # the preset's order: a type enters with its last component


def _cdd_task(key: str) -> ProtocolTask:
    comps = tuple(_CDD_COMPONENT[p] for p in key.split("_"))
    slot = max(comps, key=_CDD_ENTRY.index)
    return ProtocolTask(key, key.replace("_", "+"), comps, slot)


def _cdd_refs() -> tuple[ReferenceRow, ...]:
    def row(method: str, venue: str, values: tuple[tuple[float, float], ...], avg: tuple[float, float],
            note: str = "") -> ReferenceRow:
        return ReferenceRow(method, venue, _ONERESTORE, "rgb", dict(zip(_CDD_TYPES, values)), avg,
                            ssim_window="uniform7", note=note)

    return (
        row("Input", "", ((12.00, 0.3685), (15.87, 0.8082), (22.02, 0.7923), (23.62, 0.8791), (14.94, 0.5306),
                          (14.61, 0.4157), (13.50, 0.3830), (14.78, 0.7144), (14.79, 0.7391), (15.25, 0.4834),
                          (14.63, 0.4949)), (16.00, 0.6008),
            note="the degraded input itself: the identity row of a correctly laid-out test set should match it"),
        row("Restormer", "CVPR 2022", ((26.29, 0.8165), (28.35, 0.9813), (33.10, 0.9576), (33.43, 0.9675),
                                       (24.80, 0.8034), (25.28, 0.7864), (24.99, 0.7746), (26.80, 0.9431),
                                       (26.15, 0.9475), (23.90, 0.7693), (23.82, 0.7638)), (26.99, 0.8646)),
        row("AirNet", "CVPR 2022", ((24.83, 0.7775), (24.21, 0.9513), (26.55, 0.8914), (26.79, 0.9193),
                                    (23.23, 0.7785), (22.82, 0.7099), (23.29, 0.7230), (22.21, 0.8679),
                                    (23.29, 0.9012), (21.80, 0.7084), (22.24, 0.7249)), (23.75, 0.8140)),
        row("TransWeather", "CVPR 2022", ((23.39, 0.7253), (23.95, 0.9241), (26.69, 0.8986), (25.74, 0.8903),
                                          (22.24, 0.7208), (22.62, 0.6944), (21.80, 0.6608), (23.10, 0.8761),
                                          (22.34, 0.8678), (21.55, 0.6776), (21.01, 0.6549)), (23.13, 0.7810)),
        row("PromptIR", "NeurIPS 2023", ((26.32, 0.8054), (26.10, 0.9686), (31.56, 0.9463), (31.53, 0.9595),
                                         (24.49, 0.7888), (25.05, 0.7712), (24.51, 0.7610), (24.54, 0.9237),
                                         (23.70, 0.9254), (23.74, 0.7523), (23.33, 0.7468)), (25.90, 0.8499)),
        row("WGWSNet", "CVPR 2023", ((24.39, 0.7744), (27.90, 0.9824), (33.15, 0.9639), (34.43, 0.9728),
                                     (24.27, 0.8004), (25.06, 0.7722), (24.60, 0.7647), (27.23, 0.9546),
                                     (27.65, 0.9597), (23.90, 0.7715), (23.97, 0.7715)), (26.96, 0.8626)),
        row("OneRestore", "ECCV 2024", ((26.48, 0.8258), (32.52, 0.9895), (33.40, 0.9639), (34.31, 0.9725),
                                        (25.79, 0.8221), (25.58, 0.7995), (25.19, 0.7894), (29.99, 0.9570),
                                        (30.21, 0.9642), (24.78, 0.7880), (24.90, 0.7905)), (28.47, 0.8784),
            note="visual scene descriptor (the spreadsheet's '16_OneRestore_visual', whose mean is the README's 28.47)"),
        row("OneRestore-text", "ECCV 2024", ((26.55, 0.8266), (32.71, 0.9912), (33.48, 0.9641), (34.50, 0.9742),
                                             (26.15, 0.8295), (25.83, 0.8029), (25.56, 0.7966), (30.27, 0.9599),
                                             (30.46, 0.9663), (25.18, 0.7955), (25.28, 0.7966)), (28.72, 0.8821),
            note="the README's OneRestore-dagger (manual text descriptor; the spreadsheet's '17_OneRestore')"),
    )


_CDD_FOLDERS = tuple(
    Folder(f"{split}/{t}", split, t, "clear", t, "same-name", None,
           "no source read here states CDD-11's counts; every type folder must mirror clear/", "cdd11",
           min_side=128 if split == "train" else 1)
    for split in ("train", "test") for t in _CDD_TYPES
)

CDD11 = Protocol(
    name="cdd11",
    title="Composite degradations: CDD-11 (OneRestore)",
    description=(
        "Eleven single and mixed weather/illumination degradations (low, haze, rain, snow and their pairs and "
        "triples), paired with the same clear images; trained on CDD-11's training split, scored per type."
    ),
    tasks=tuple(_cdd_task(t) for t in _CDD_TYPES),
    folders=_CDD_FOLDERS,
    roots={"train": ("train", "CDD-11_train", "cdd11/train"), "test": ("test", "CDD-11_test", "cdd11/test")},
    test_sets=tuple(TestSet(t, t.replace("_", "+"), f"test/{t}", t) for t in _CDD_TYPES),
    evaluation=Evaluation(
        color="rgb", border=0, crop_multiple=1, quantize=True, ssim_window="uniform7", noise_seed=0,
        note=(
            "As OneRestore's img_file/cal_psnr_ssim.py: restored images saved as 8-bit PNG and compared with the "
            "clear image in RGB (data range 1), SSIM with scikit-image's 7x7 window; the average is over the 11 "
            "types. MoCE-IR's CDD-11 numbers come from its own test code (float output, Gaussian SSIM)."
        ),
    ),
    datasets=_datasets("cdd11"),
    references=_cdd_refs(),
    preset=TrainPreset(
        order="LHR", periods=6, period_iters=50_000, batch_size=32, patch_size=128, lr=2e-4, optimizer="adamw",
        balance="samples",
        rationale=(
            "Slots: the library has no snow task, so snow shares the rain (precipitation) slot; each type is "
            "labelled with the slot of its last-entering component in the order L, H, R, so a type enters the "
            "curriculum once all its components have (period 1: low; 2: + haze, low_haze; 3: + every rain and "
            "snow type), then three all-type periods. Explicit prompts get the equal mixture of a type's "
            "component prompts (rain and snow share one). Batches are uniform over samples, so every type is "
            "drawn equally often once active. Budget: no source read here states OneRestore's or MoCE-IR's "
            "CDD-11 iteration count; 6 x 50,000 at batch 32 is this library's choice."
        ),
        gpu_hours=("about 55 GPU-hours per strategy on one H200 for a PromptIR-size backbone (estimate: the "
                   "library's measured 3.0 it/s at batch 16 scaled to batch 32; not measured on these data)"),
    ),
    layout_source="OneRestore README ('Prepare Dataset': data/{train,test}/{clear, low, ..., low_haze_snow}) and "
                  "MoCE-IR's src/data/dataset_utils.py (CDD11: degraded and clear images share the file name)",
)

# -- the seed paper's seven-task MiO setting ------------------------------------------------------------
_MIO_TASKS = tuple(
    ProtocolTask(name, title, (name,), name)
    for name, title in (("sr", "Super-resolution"), ("blur", "Deblurring"), ("noise", "Denoising"),
                        ("jpeg", "JPEG artifact removal"), ("rain", "Deraining"), ("haze", "Dehazing"),
                        ("lowlight", "Low-light enhancement"))
)
MIO7 = Protocol(
    name="mio-7",
    title="Multiple-in-one, seven tasks (Kong, Dong & Zhang 2024)",
    description=(
        "The seed paper's setting: super-resolution, deblurring, denoising, JPEG, deraining, dehazing, low-light, "
        "all synthesized on the fly from clean images by the library's degradations (In-Dis ranges), scored on "
        "a test set written by `mio-strategies degrade`."
    ),
    tasks=_MIO_TASKS,
    folders=(Folder("train/gt", "train", None, ".", None, "synthesize", None,
                    "any number of clean images (the paper: 3,450 DIV2K + Flickr2K images)", "mio-train",
                    min_side=128),)
    + tuple(Folder(f"test/{t.key}", "test", t.key, "GT", t.key, "same-name", None,
                   "as many as the test set was built with", "mio-test") for t in _MIO_TASKS),
    roots={"train": ("train",), "test": ("test",)},
    test_sets=tuple(TestSet(t.key, t.title, f"test/{t.key}", t.key) for t in _MIO_TASKS),
    evaluation=Evaluation(
        color="rgb", border=4, crop_multiple=1, quantize=True, ssim_window="basicsr", noise_seed=0,
        note="As the reference implementation (basicsr): 8-bit RGB, 4-pixel border crop, 11x11 Gaussian SSIM.",
    ),
    datasets=_datasets("mio-train", "mio-test"),
    references=(),  # the paper's rows live with the harness (`mio-strategies eval --reference srresnet:M`)
    preset=TrainPreset(
        order="RJBSNHL", periods=10, period_iters=100_000, batch_size=16, patch_size=128, lr=2e-4, optimizer="adamw",
        rationale="The seed paper's U-Net protocol (Restormer/PromptIR): order RJBSNHL, 10 periods x 100k, batch 16.",
        gpu_hours="about 93 GPU-hours per strategy on one H200 (measured throughput of the restormer preset)",
    ),
    layout_source="this library (`mio-strategies degrade` writes the test set)",
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (THREE_TASK, FIVE_TASK, CDD11, MIO7)}
