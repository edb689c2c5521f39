"""Term lists for rule-based extraction (lower case; matched on token LOWER).

Small, hand-written and deliberately conservative; a trained tagger (`ner-ncbi-disease`,
`ner-bc5cdr`) can add disease and chemical mentions these lists miss.
"""

from __future__ import annotations

import re

PROBLEMS = """
hypertension|htn|diabetes|diabetes mellitus|type 2 diabetes|type 1 diabetes|dm|niddm|iddm|
hyperlipidemia|dyslipidemia|hypercholesterolemia|coronary artery disease|cad|myocardial infarction|mi|
heart failure|congestive heart failure|chf|atrial fibrillation|afib|a-fib|atrial flutter|
cardiomyopathy|angina|unstable angina|stroke|cva|transient ischemic attack|tia|
peripheral vascular disease|pvd|deep vein thrombosis|dvt|pulmonary embolism|pe|aortic stenosis|
mitral regurgitation|murmur|arrhythmia|bradycardia|tachycardia|hypotension|syncope|
asthma|copd|chronic obstructive pulmonary disease|emphysema|bronchitis|pneumonia|
pleural effusion|pneumothorax|respiratory failure|sleep apnea|obstructive sleep apnea|
tuberculosis|lung cancer|chronic kidney disease|ckd|renal failure|acute renal failure|
acute kidney injury|aki|end-stage renal disease|esrd|urinary tract infection|uti|
kidney stone|nephrolithiasis|hydronephrosis|benign prostatic hypertrophy|bph|prostate cancer|
hematuria|incontinence|gerd|gastroesophageal reflux disease|reflux|peptic ulcer disease|
gastritis|pancreatitis|cholecystitis|cholelithiasis|appendicitis|diverticulitis|diverticulosis|
crohn's disease|ulcerative colitis|colitis|irritable bowel syndrome|cirrhosis|hepatitis|
hepatitis c|hepatitis b|fatty liver|gi bleed|gastrointestinal bleeding|colon cancer|polyp|polyps|
anemia|iron deficiency anemia|thrombocytopenia|leukemia|lymphoma|multiple myeloma|cancer|
carcinoma|breast cancer|metastatic disease|metastasis|tumor|mass|lesion|neoplasm|
hypothyroidism|hyperthyroidism|obesity|morbid obesity|osteoporosis|osteoarthritis|arthritis|
rheumatoid arthritis|gout|lupus|fibromyalgia|degenerative joint disease|djd|
fracture|hip fracture|scoliosis|spinal stenosis|herniated disc|disc herniation|
radiculopathy|carpal tunnel syndrome|rotator cuff tear|meniscal tear|tendonitis|bursitis|
epilepsy|seizure disorder|seizure|seizures|migraine|parkinson's disease|alzheimer's disease|
dementia|multiple sclerosis|neuropathy|peripheral neuropathy|depression|anxiety|
bipolar disorder|schizophrenia|ptsd|adhd|insomnia|alcohol abuse|substance abuse|
hiv|aids|sepsis|cellulitis|abscess|infection|osteomyelitis|otitis media|sinusitis|
pharyngitis|tonsillitis|conjunctivitis|glaucoma|cataract|cataracts|macular degeneration|
diabetic retinopathy|retinal detachment|endometriosis|fibroids|uterine fibroids|
ovarian cyst|pregnancy|preeclampsia|gestational diabetes|hernia|inguinal hernia|
umbilical hernia|hemorrhoids|eczema|psoriasis|dermatitis|melanoma|basal cell carcinoma|
allergic rhinitis|edema|ascites|jaundice|dehydration|hyponatremia|hyperkalemia|hypokalemia|
malnutrition|covid-19|influenza|encephalopathy|delirium|hematoma|aneurysm|
abdominal aortic aneurysm|varicose veins|ulcer|wound infection
"""

SYMPTOMS = """
pain|chest pain|abdominal pain|back pain|low back pain|neck pain|headache|headaches|
knee pain|shoulder pain|hip pain|joint pain|pelvic pain|flank pain|leg pain|arm pain|
fever|fevers|chills|night sweats|fatigue|malaise|weakness|weight loss|weight gain|
nausea|vomiting|diarrhea|constipation|bloating|heartburn|dysphagia|odynophagia|
hematemesis|melena|hematochezia|bloody stools|shortness of breath|sob|dyspnea|
dyspnea on exertion|orthopnea|cough|wheezing|hemoptysis|sputum|palpitations|
dizziness|lightheadedness|vertigo|numbness|tingling|paresthesias|tremor|confusion|
loss of consciousness|blurred vision|double vision|diplopia|vision loss|hearing loss|
tinnitus|ear pain|sore throat|nasal congestion|rhinorrhea|rash|itching|pruritus|
swelling|dysuria|urinary frequency|urgency|nocturia|polyuria|polydipsia|
anorexia|decreased appetite|insomnia|anxiety|depressed mood|suicidal ideation|
difficulty breathing|difficulty swallowing|bleeding|bruising|stiffness|
limping|cramping|cramps|discharge|vaginal bleeding|syncope|fainting|sweating|diaphoresis
"""

MEDICATIONS = """
aspirin|acetaminophen|tylenol|ibuprofen|motrin|advil|naproxen|aleve|celecoxib|celebrex|
morphine|oxycodone|percocet|hydrocodone|vicodin|norco|tramadol|ultram|codeine|fentanyl|
dilaudid|hydromorphone|meperidine|demerol|gabapentin|neurontin|pregabalin|lyrica|
lisinopril|enalapril|ramipril|captopril|losartan|valsartan|irbesartan|metoprolol|
lopressor|toprol|atenolol|carvedilol|coreg|propranolol|labetalol|amlodipine|norvasc|
nifedipine|diltiazem|cardizem|verapamil|hydrochlorothiazide|hctz|furosemide|lasix|
spironolactone|bumetanide|torsemide|chlorthalidone|digoxin|amiodarone|nitroglycerin|
isosorbide|hydralazine|clonidine|atorvastatin|lipitor|simvastatin|zocor|pravastatin|
rosuvastatin|crestor|lovastatin|ezetimibe|zetia|warfarin|coumadin|heparin|enoxaparin|
lovenox|apixaban|eliquis|rivaroxaban|xarelto|dabigatran|clopidogrel|plavix|
metformin|glucophage|glipizide|glyburide|glimepiride|pioglitazone|sitagliptin|januvia|
insulin|lantus|humalog|novolog|levemir|levothyroxine|synthroid|prednisone|
methylprednisolone|solu-medrol|medrol|dexamethasone|hydrocortisone|albuterol|proventil|
ventolin|ipratropium|atrovent|tiotropium|spiriva|fluticasone|advair|symbicort|
montelukast|singulair|omeprazole|prilosec|pantoprazole|protonix|esomeprazole|nexium|
lansoprazole|ranitidine|zantac|famotidine|pepcid|ondansetron|zofran|metoclopramide|
reglan|promethazine|phenergan|docusate|colace|senna|miralax|lactulose|loperamide|
amoxicillin|augmentin|ampicillin|penicillin|cephalexin|keflex|cefazolin|ancef|
ceftriaxone|rocephin|cefuroxime|azithromycin|zithromax|clarithromycin|erythromycin|
doxycycline|tetracycline|ciprofloxacin|cipro|levofloxacin|levaquin|moxifloxacin|
bactrim|trimethoprim|sulfamethoxazole|nitrofurantoin|macrobid|metronidazole|flagyl|
clindamycin|vancomycin|gentamicin|piperacillin|zosyn|meropenem|fluconazole|diflucan|
acyclovir|valacyclovir|oseltamivir|sertraline|zoloft|fluoxetine|prozac|paroxetine|paxil|
citalopram|celexa|escitalopram|lexapro|venlafaxine|effexor|duloxetine|cymbalta|
bupropion|wellbutrin|trazodone|mirtazapine|amitriptyline|nortriptyline|lorazepam|ativan|
alprazolam|xanax|clonazepam|klonopin|diazepam|valium|zolpidem|ambien|quetiapine|
seroquel|olanzapine|zyprexa|risperidone|risperdal|haloperidol|haldol|aripiprazole|
lithium|lamotrigine|lamictal|levetiracetam|keppra|phenytoin|dilantin|carbamazepine|
tegretol|valproate|depakote|topiramate|topamax|donepezil|aricept|memantine|
sumatriptan|imitrex|cyclobenzaprine|flexeril|baclofen|tizanidine|methotrexate|
allopurinol|colchicine|hydroxychloroquine|plaquenil|tamsulosin|flomax|finasteride|
proscar|oxybutynin|sildenafil|viagra|potassium chloride|potassium|magnesium|calcium|
vitamin d|multivitamin|iron|ferrous sulfate|folic acid|vitamin b12|estrogen|premarin|
progesterone|oral contraceptives|lidocaine|bupivacaine|marcaine|propofol|midazolam|
versed|ketamine|succinylcholine|epinephrine|norepinephrine|dopamine|naloxone|narcan|
diphenhydramine|benadryl|loratadine|claritin|cetirizine|zyrtec|epoetin|chemotherapy
"""

PROCEDURES = """
surgery|operation|appendectomy|cholecystectomy|laparoscopic cholecystectomy|colectomy|
hysterectomy|total abdominal hysterectomy|cesarean section|c-section|tonsillectomy|
adenoidectomy|mastectomy|lumpectomy|biopsy|excision|resection|amputation|
colonoscopy|endoscopy|egd|esophagogastroduodenoscopy|bronchoscopy|cystoscopy|
arthroscopy|knee arthroscopy|laparoscopy|thoracentesis|paracentesis|lumbar puncture|
cardiac catheterization|catheterization|angioplasty|stent placement|stent|cabg|
coronary artery bypass graft|bypass surgery|pacemaker placement|pacemaker|ablation|
cardioversion|dialysis|hemodialysis|intubation|mechanical ventilation|tracheostomy|
transfusion|blood transfusion|chest x-ray|x-ray|ct scan|ct|cat scan|mri|ultrasound|
echocardiogram|ekg|ecg|electrocardiogram|eeg|emg|stress test|mammogram|pet scan|
total knee arthroplasty|total knee replacement|total hip arthroplasty|hip replacement|
knee replacement|arthroplasty|open reduction internal fixation|orif|fusion|
spinal fusion|laminectomy|discectomy|carpal tunnel release|hernia repair|
inguinal hernia repair|vasectomy|circumcision|cataract extraction|phacoemulsification|
vitrectomy|tympanostomy|septoplasty|thyroidectomy|prostatectomy|turp|nephrectomy|
lithotripsy|debridement|incision and drainage|i&d|skin graft|radiation therapy|
radiation|physical therapy|injection|epidural steroid injection|nerve block|anesthesia|
general anesthesia|suture|sutures|repair
"""

LABS = """
hemoglobin|hgb|hematocrit|hct|white blood cell count|white count|wbc|platelets|platelet count|
plt|sodium|na|potassium|k|chloride|cl|bicarbonate|bicarb|co2|bun|blood urea nitrogen|
creatinine|cr|glucose|blood sugar|calcium|magnesium|phosphorus|albumin|total protein|
bilirubin|total bilirubin|alt|ast|alkaline phosphatase|alk phos|lipase|amylase|
troponin|bnp|inr|pt|ptt|hemoglobin a1c|hba1c|a1c|tsh|free t4|ldl|hdl|cholesterol|
total cholesterol|triglycerides|psa|esr|sed rate|crp|c-reactive protein|lactate|
lactic acid|ammonia|uric acid|ferritin|iron|b12|folate|vitamin d|ck|cpk|d-dimer|
ph|pco2|po2|o2 saturation|oxygen saturation|sat|spo2|temperature|temp|blood pressure|bp|
heart rate|pulse|respiratory rate|weight|height|bmi
"""

# common clinical abbreviations of the lists above -> the term they stand for, whose
# vocabulary codes (HPO, ICD-10-CM, DrugBank) they take; the vocabularies themselves list few
ABBREVIATIONS = {
    "htn": "hypertension", "dm": "diabetes mellitus", "niddm": "type 2 diabetes mellitus",
    "iddm": "type 1 diabetes mellitus", "cad": "coronary artery disease",
    "mi": "myocardial infarction", "chf": "congestive heart failure",
    "afib": "atrial fibrillation", "a-fib": "atrial fibrillation", "cva": "stroke",
    "tia": "transient ischemic attack", "pvd": "peripheral vascular disease",
    "dvt": "deep vein thrombosis", "pe": "pulmonary embolism",
    "copd": "chronic obstructive pulmonary disease", "ckd": "chronic kidney disease",
    "aki": "acute kidney injury", "esrd": "end stage renal disease",
    "uti": "urinary tract infection", "bph": "benign prostatic hyperplasia",
    "gerd": "gastroesophageal reflux disease", "djd": "degenerative joint disease",
    "ptsd": "post-traumatic stress disorder", "adhd": "attention deficit hyperactivity disorder",
    "sob": "shortness of breath", "hctz": "hydrochlorothiazide", "osa": "obstructive sleep apnea",
}


def terms(block: str) -> list[str]:
    """The non-empty |-separated terms of a block."""
    return sorted({t.strip() for t in block.replace("\n", "").split("|") if t.strip()})


# medications recognised by their stem when not listed
MED_SUFFIX = re.compile(
    r"^[a-z]{3,}(pril|sartan|olol|dipine|statin|cillin|mycin|floxacin|cycline|azole|prazole|"
    r"tidine|parin|xaban|gliptin|formin|semide|thiazide|triptan|afil|zepam|azepam|oxetine|"
    r"pramine|triptyline|setron|lukast|dronate|tinib|umab|ximab|zumab|vir|conazole|sone|olone)$")
# problems recognised by their form when not listed
PROBLEM_SUFFIX = re.compile(r"^[a-z]{3,}(itis|osis|emia|oma|opathy|ectasia|plasia|iasis)$")
PROBLEM_HEADS = ("disease", "syndrome", "disorder", "cancer", "carcinoma", "failure",
                 "infection", "deficiency", "insufficiency", "fracture", "tumor", "effusion",
                 "enlargement", "stenosis", "regurgitation", "hypertrophy", "dysfunction",
                 "obstruction", "injury", "tear", "infarction")

DOSE = re.compile(r"\b\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*(?:mg|mcg|µg|g|gm|grams?|units?|u|iu|"
                  r"ml|mL|meq|mEq|%|puffs?|tabs?|tablets?|capsules?|drops?|l/min|liters?)\b",
                  re.IGNORECASE)
ROUTE = re.compile(r"\b(?:p\.o\.|po|by mouth|orally|oral|iv|i\.v\.|intravenous(?:ly)?|im|"
                   r"intramuscular(?:ly)?|subcutaneous(?:ly)?|subq|sq|s\.c\.|sc|topical(?:ly)?|"
                   r"inhaled|via nebulizer|nebulized|sublingual(?:ly)?|sl|p\.r\.|pr|per rectum|"
                   r"transdermal|intranasal|ophthalmic)(?![\w])", re.IGNORECASE)
FREQUENCY = re.compile(r"(?<![\w])(?:daily|once (?:a|per) day|twice (?:a|per) day|three times (?:a|per) "
                       r"day|four times (?:a|per) day|b\.i\.d\.?|bid|t\.i\.d\.?|tid|q\.i\.d\.?|qid|"
                       r"q\.d\.?|qd|qhs|q\.h\.s\.?|at bedtime|nightly|every morning|q\.a\.m\.?|qam|"
                       r"q\.?\s?\d+\s?h(?:ours?|rs?)?\.?|every \d+(?:\s*(?:-|to)\s*\d+)? hours|"
                       r"p\.r\.n\.?|prn|as needed|weekly|once a week|monthly|stat)(?![\w])",
                       re.IGNORECASE)
LAB_VALUE = re.compile(r"^\s*(?:level|count|value)?\s*(?:of|was|is|were|at|:|=)?\s*"
                       r"(?P<value>[<>]?\s*\d+(?:\.\d+)?(?:/\d+)?)\s*"
                       r"(?P<unit>mg/dl|g/dl|mmol/l|meq/l|mEq/L|k/ul|x10\^?9/l|iu/l|u/l|units/l|ng/ml|"
                       r"pg/ml|ng/dl|mcg/dl|miu/l|uiu/ml|mm/hr|mmhg|mm hg|bpm|%|seconds|sec|kg|lb|lbs|"
                       r"cm|degrees|°f|°c|f|c)?(?![\w/])", re.IGNORECASE)

# ConText cues live in nlp/data/context_cues.tsv (read by iatros.nlp.context.load_cues)
