"""What to cite for each collection an adapter reads (the card lists it beside the licence).

Keyed by adapter name; a recipe's `export.card.citations` (source name -> text) adds or overrides entries.
"""

from __future__ import annotations

CITATIONS: dict[str, str] = {
    "aptos2019": "Asia Pacific Tele-Ophthalmology Society. APTOS 2019 Blindness Detection (Kaggle competition), 2019.",
    "case_reports": "The case reports of the PubMed Central Open Access Subset; cite each article by its PMCID.",
    "chaksu": "Kumar JRH et al. Chakshu: a glaucoma specific fundus image database. Scientific Data 10:70, 2023.",
    "ddr": "Li T et al. Diagnostic assessment of deep learning algorithms for diabetic retinopathy screening. "
    "Information Sciences 501:511-522, 2019.",
    "deepdrid": "Liu R et al. DeepDRiD: Diabetic Retinopathy - Grading and Image Quality Estimation Challenge. "
    "Patterns 3(6):100512, 2022.",
    "eyepacs": "EyePACS; Kaggle Diabetic Retinopathy Detection, 2015. Cuadros J, Bresnick G. EyePACS: an adaptable "
    "telemedicine system for diabetic retinopathy screening. J Diabetes Sci Technol 3(3):509-516, 2009.",
    "eyeq": "Fu H et al. Evaluation of Retinal Image Quality Assessment Networks in Different Color-spaces. "
    "MICCAI 2019.",
    "ffa_ir": "Li M et al. FFA-IR: Towards an Explainable and Reliable Medical Report Generation Benchmark. "
    "NeurIPS Datasets and Benchmarks, 2021.",
    "g1020": "Bajwa MN et al. G1020: A Benchmark Retinal Fundus Image Dataset for Computer-Aided Glaucoma "
    "Detection. IJCNN 2020.",
    "idrid": "Porwal P et al. Indian Diabetic Retinopathy Image Dataset (IDRiD): A Database for Diabetic "
    "Retinopathy Screening Research. Data 3(3):25, 2018.",
    "jsiec": "Cen LP et al. Automatic detection of 39 fundus diseases and conditions in retinal photographs using "
    "deep neural networks. Nature Communications 12:4828, 2021.",
    "messidor2": "Decenciere E et al. Feedback on a publicly distributed image database: the Messidor database. "
    "Image Analysis & Stereology 33(3):231-234, 2014. Grades: Krause J et al. Ophthalmology 125(8):1264-1272, 2018.",
    "mm_retinal_reason": "Wu R et al. Bridging the Gap in Ophthalmic AI: MM-Retinal-Reason Dataset and "
    "OphthaReason Model toward Dynamic Multimodal Reasoning. arXiv:2508.16129, 2025.",
    "mm_retinal_v1": "Wu R et al. MM-Retinal: Knowledge-Enhanced Foundational Pretraining with Fundus Image-Text "
    "Expertise. MICCAI 2024.",
    "multicare": "Nievas Offidani MA, Delrieux CA. Dataset of clinical cases, images, image labels and captions from "
    "open access case reports from PubMed Central (1990-2023). Data in Brief 52:110008, 2024.",
    "oct2017": "Kermany DS et al. Identifying Medical Diagnoses and Treatable Diseases by Image-Based Deep "
    "Learning. Cell 172(5):1122-1131, 2018.",
    "octdl": "Kulyabin M et al. OCTDL: Optical Coherence Tomography Dataset for Image-Based Deep Learning "
    "Methods. Scientific Data 11:365, 2024.",
    "octid": "Gholami P et al. OCTID: Optical coherence tomography image database. Computers & Electrical "
    "Engineering 81:106532, 2020.",
    "odir5k": "Peking University. International Competition on Ocular Disease Intelligent Recognition (ODIR-2019).",
    "origa": "Zhang Z et al. ORIGA-light: An online retinal fundus image database for glaucoma analysis and "
    "research. IEEE EMBC 2010.",
    "papila": "Kovalyk O et al. PAPILA: Dataset with fundus images and clinical data of both eyes of the same "
    "patient for glaucoma assessment. Scientific Data 9:291, 2022.",
    "pmc_patients": "Zhao Z, Jin Q, Chen F, Peng T, Yu S. A large-scale dataset of patient summaries for "
    "retrieval-based clinical decision support systems. Scientific Data 10:909, 2023 (arXiv:2202.13876).",
    "refuge": "Orlando JI et al. REFUGE Challenge: A unified framework for evaluating automated methods for "
    "glaucoma assessment from fundus photographs. Medical Image Analysis 59:101570, 2020.",
    "rfmid": "Pachade S et al. Retinal Fundus Multi-Disease Image Dataset (RFMiD): A Dataset for Multi-Disease "
    "Detection Research. Data 6(2):14, 2021.",
}
MISSING = "no citation on record: add one under export.card.citations in the recipe"


def citation(source: str, adapter: str | None, overrides: dict[str, str]) -> str:
    """The recipe's citation for `source`, else the adapter's, else a note saying there is none."""
    return overrides.get(source) or CITATIONS.get(adapter or source) or MISSING
