"""Fixed candidate/reference pairs in raw MIMIC-CXR style, for the report-metric tests.

The pairs hold what report text has and metric code trips on: numbered lists, decimals ("3.5 cm"),
slashes, parentheses, brackets, quotes, newlines, double spaces, `__` de-identification runs, `..`,
headings, empty sentences, an empty candidate and references that `rouge` refuses.
"""

from __future__ import annotations

#: (candidate, reference): generated report first, as the protocols take them.
PAIRS: list[tuple[str, str]] = [
    ("The heart size is normal. No pleural effusion.", "Heart size is normal. There is no pleural effusion."),
    (
        "1. Small left pleural effusion. 2. Mild cardiomegaly.",
        "FINDINGS:\n1. Small left pleural effusion.\n2. Mild cardiomegaly.\n3. No pneumothorax.",
    ),
    ("There is a 3.5 cm nodule in the right upper lobe.", "A 3.5 cm right upper lobe nodule (arrow) is again seen."),
    ("AP/PA and lateral views of the chest.", "PA and lateral views of the chest were obtained."),
    (
        "Lungs are clear (no focal consolidation).",
        "The lungs are clear.  No focal consolidation, effusion or pneumothorax.",
    ),
    ("Compared to ___, the ET tube is unchanged.", "Compared to __, the endotracheal tube is in unchanged position."),
    ("No acute cardiopulmonary process..", "IMPRESSION:\n\nNo acute cardiopulmonary process."),
    ("", "Stable mild cardiomegaly."),
    ("Moderate pulmonary edema.", ""),
    ("Left-sided PICC line tip in the SVC.", 'Left-sided PICC line terminates in the "mid SVC".'),
    ("Bibasilar atelectasis.  Low lung volumes.", "Low lung volumes with bibasilar atelectasis."),
    ("Heart size normal. . Mediastinum unremarkable.", "Heart size is normal. Mediastinal contours are unremarkable."),
    (
        "1. No pneumothorax. 2. Stable lines and tubes. 3. Small effusions.",
        "No pneumothorax. Lines and tubes are stable.",
    ),
    ("The patient's NG tube is in the stomach.", "NG tube tip is in the stomach; side port near the GE junction."),
    ("Opacity at the right base, 2.2 x 1.5 cm [image 4].", "Right basilar opacity measuring 2.2 x 1.5 cm."),
    (
        "Cardiomegaly is stable\nwith mild vascular congestion.",
        "Stable cardiomegaly with mild pulmonary vascular congestion.",
    ),
    (
        "Degenerative changes of the thoracic spine\\ no fracture.",
        "No acute fracture. Degenerative changes in the spine.",
    ),
    ("Small right apical pneumothorax, ~5% of the hemithorax!", "Tiny right apical pneumothorax is unchanged."),
    ("Status post CABG; sternal wires intact.", "Status post median sternotomy and CABG. Sternal wires are intact."),
    ("No evidence of pneumonia?", "No evidence of pneumonia."),
    ("Effusion @ left base = small.", "Small left pleural effusion at the base."),
    ("4. Interval improvement. 5. Resolved edema.", "Interval improvement with resolution of pulmonary edema."),
    ("____ ____ unchanged ____.", "Findings unchanged from ___."),
    ("Heart size is top normal {stable}.", "The heart size is at the upper limits of normal, stable."),
    ("Chest: clear.", "Chest radiograph: the lungs are clear."),
    ("The ET tube is 4.5 cm above the carina.", "ET tube terminates 4.5 cm above the carina."),
    ("Pulmonary   vasculature is normal.", "Normal pulmonary vasculature."),
    ("Right IJ line tip at the cavoatrial junction.", "Right internal jugular line ends at the cavoatrial junction."),
    ("Hyperinflated lungs c/w COPD.", "Hyperinflated lungs consistent with COPD."),
    ("No change.", "No significant change since the prior study."),
]
CANDIDATES = [candidate for candidate, _ in PAIRS]
REFERENCES = [reference for _, reference in PAIRS]
