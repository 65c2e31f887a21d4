//! Patients and guidelines use different words: "pee" against "urinary", "mini stroke" against
//! "transient ischemic attack". Before a question is embedded, the clinical terms for the lay words
//! it contains are appended, so that it lands nearer the passages written for clinicians.

/// Lay phrase (lower case, matched on word boundaries) and the clinical terms it stands for.
const GLOSSARY: &[(&str, &str)] = &[
    ("pee", "urinary urination dysuria"),
    ("peeing", "urinary urination dysuria"),
    ("wee", "urinary urination"),
    (
        "burns when i pee",
        "dysuria urinary tract infection cystitis",
    ),
    ("water infection", "urinary tract infection"),
    ("kidney infection", "pyelonephritis urinary tract infection"),
    (
        "heart attack",
        "myocardial infarction STEMI acute coronary syndrome",
    ),
    ("mini stroke", "transient ischemic attack TIA"),
    ("stroke", "acute ischemic stroke"),
    ("face drooped", "stroke facial droop"),
    ("brain bleed", "intracerebral hemorrhage"),
    ("bleed inside the brain", "intracerebral hemorrhage"),
    ("blood thinner", "anticoagulation anticoagulant"),
    ("blood thinners", "anticoagulation anticoagulant"),
    ("blood clot", "venous thromboembolism deep vein thrombosis"),
    ("clot", "thrombosis embolism"),
    ("clot in my leg", "deep vein thrombosis"),
    ("lungs", "pulmonary"),
    ("chest infection", "community-acquired pneumonia"),
    ("antibiotics", "antibiotic antimicrobial therapy"),
    ("water tablets", "diuretics"),
    ("sugar", "glucose glycemic"),
    ("blood sugar", "glycemic glucose HbA1c"),
    ("thin bones", "osteoporosis bone mineral density"),
    ("bone density", "osteoporosis DXA"),
    ("big toe", "gout podagra first metatarsophalangeal joint"),
    ("stiff joints", "rheumatoid arthritis synovitis"),
    ("joints are stiff", "rheumatoid arthritis morning stiffness"),
    ("feel low", "depression depressive disorder"),
    ("felt low", "depression depressive disorder"),
    ("lost interest", "anhedonia depression"),
    ("since my baby was born", "postpartum perinatal"),
    ("drinking", "alcohol"),
    ("cannot stop drinking", "alcohol use disorder"),
    ("hit his head", "traumatic brain injury"),
    ("hitting his head", "traumatic brain injury head injury"),
    ("hit my head", "traumatic brain injury head injury"),
    ("drowsy", "decreased consciousness"),
    (
        "vomited blood",
        "hematemesis upper gastrointestinal bleeding",
    ),
    ("black stools", "melena upper gastrointestinal bleeding"),
    ("stools are black", "melena upper gastrointestinal bleeding"),
    ("upper belly", "epigastric"),
    ("belly", "abdominal"),
    ("tummy", "abdominal"),
    ("through to my back", "radiating to the back pancreatitis"),
    ("yellow", "jaundice"),
    ("short of breath", "dyspnea"),
    ("breathless", "dyspnea"),
    ("out of breath", "dyspnea"),
    ("fainted", "syncope"),
    ("passed out", "syncope"),
    ("racing heart", "palpitations tachycardia"),
    ("irregular heartbeat", "arrhythmia atrial fibrillation"),
    ("swollen ankles", "peripheral edema"),
    ("swollen", "edema swelling"),
    ("fast heartbeat", "tachycardia"),
    ("low blood pressure", "hypotension shock"),
    ("infection", "infection sepsis"),
    ("newborn", "neonatal"),
    ("not breathing", "apnea resuscitation"),
    ("surgery", "perioperative noncardiac surgery"),
    ("fatty liver", "nonalcoholic fatty liver disease NAFLD"),
    ("scalded", "burn"),
    ("boiling water", "scald burn"),
];

/// `query` with the clinical terms for its lay phrases appended.
pub fn expand(query: &str) -> String {
    let lower = query.to_lowercase();
    let words: String = lower
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let padded = format!(
        " {} ",
        words.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let mut extra: Vec<&str> = Vec::new();
    for (lay, clinical) in GLOSSARY {
        if padded.contains(&format!(" {lay} ")) && !extra.contains(clinical) {
            extra.push(clinical);
        }
    }
    if extra.is_empty() {
        query.to_owned()
    } else {
        format!("{query} ({})", extra.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lay_words_gain_their_clinical_terms_on_word_boundaries() {
        assert_eq!(
            expand("It burns when I pee"),
            "It burns when I pee (urinary urination dysuria; dysuria urinary tract infection cystitis)"
        );
        assert!(expand("I had a mini stroke").contains("transient ischemic attack"));
        // "peer" is not "pee"; a question with no lay terms is unchanged.
        assert_eq!(expand("my peer reviewed it"), "my peer reviewed it");
    }
}
