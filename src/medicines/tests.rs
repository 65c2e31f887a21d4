//! The medicine knowledge and its checks on a small set written for the tests, and the built-in
//! set's validity and coverage.

use super::*;
use crate::triage::DrugLexicon;

const CLASSES_AND_DRUGS: &str = r#"
[[class]]
id = "anticoagulant"
name = "Anticoagulants"
name_zh = "抗凝药"
names = ["blood thinner", "blood thinners"]
names_zh = ["抗凝药"]
source = "WHO ATC B01A"

[[class]]
id = "vitamin_k_antagonist"
name = "Vitamin K antagonists"
name_zh = "维生素K拮抗剂"
parents = ["anticoagulant"]
source = "WHO ATC B01AA"

[[class]]
id = "nsaid"
name = "NSAIDs"
name_zh = "非甾体抗炎药"
names = ["nsaids"]
source = "WHO ATC M01A"

[[class]]
id = "beta_lactam"
name = "Beta-lactams"
name_zh = "β-内酰胺类"
source = "WHO ATC J01C/J01D"

[[class]]
id = "penicillin"
name = "Penicillins"
name_zh = "青霉素类"
parents = ["beta_lactam"]
names = ["penicillins"]
names_zh = ["青霉素"]
source = "WHO ATC J01C"

[[class]]
id = "cephalosporin"
name = "Cephalosporins"
name_zh = "头孢菌素类"
parents = ["beta_lactam"]
names_zh = ["头孢"]
source = "WHO ATC J01DB-DE"

[[drug]]
id = "warfarin"
name = "warfarin"
name_zh = "华法林"
names = ["coumadin", "jantoven"]
classes = ["vitamin_k_antagonist"]
atc = "B01AA03"
source = "WHO ATC B01AA03"

[[drug]]
id = "ibuprofen"
name = "ibuprofen"
name_zh = "布洛芬"
names = ["advil", "nurofen"]
names_zh = ["芬必得"]
classes = ["nsaid"]
atc = "M01AE01"
source = "WHO ATC M01AE01"

[[drug]]
id = "amoxicillin"
name = "amoxicillin"
name_zh = "阿莫西林"
classes = ["penicillin"]
atc = "J01CA04"
source = "WHO ATC J01CA04"

[[drug]]
id = "cefalexin"
name = "cefalexin"
name_zh = "头孢氨苄"
names = ["cephalexin", "keflex"]
classes = ["cephalosporin"]
atc = "J01DB01"
source = "WHO ATC J01DB01"

[[drug]]
id = "paracetamol"
name = "paracetamol"
name_zh = "对乙酰氨基酚"
names = ["acetaminophen", "tylenol"]
atc = "N02BE01"
source = "WHO ATC N02BE01"
"#;

const RULES: &str = r#"
[[interaction]]
a = "anticoagulant"
b = "nsaid"
severity = "major"
mechanism = "Additive bleeding risk."
advice = "Avoid; use paracetamol."
source = "BNF Appendix 1"

[[interaction]]
a = "warfarin"
b = "paracetamol"
severity = "moderate"
mechanism = "Regular paracetamol raises the INR."
advice = "Monitor the INR with regular use."
source = "Warfarin SmPC 4.5"

[[allergy]]
allergen = "penicillin"
conflicts = ["penicillin"]
cross_reactive = ["cephalosporin"]
advice = "Avoid penicillins; cephalosporins with caution."
source = "NICE CG183"
"#;

fn knowledge() -> MedicineKnowledge {
    MedicineKnowledge::from_files([
        (
            "medicines/drugs.toml".to_owned(),
            CLASSES_AND_DRUGS.to_owned(),
        ),
        ("medicines/rules.toml".to_owned(), RULES.to_owned()),
    ])
    .expect("the test set is valid")
}

fn lookup(k: &MedicineKnowledge) -> NameLookup<'_> {
    NameLookup {
        knowledge: k,
        lexicon: None,
    }
}

fn drug(k: &MedicineKnowledge, id: &str) -> Agent {
    k.by_id(id).unwrap()
}

#[test]
fn a_drug_of_a_class_hits_the_class_rule_through_its_parents() {
    let k = knowledge();
    let found = k
        .interaction(drug(&k, "ibuprofen"), drug(&k, "warfarin"))
        .unwrap();
    assert_eq!(found.rule.severity, Severity::Major);
    assert_eq!(
        (k.id_of(found.a), k.id_of(found.b)),
        ("warfarin", "ibuprofen")
    );
    // A class the patient names ("blood thinners") is covered by a rule for it or a broader one.
    assert!(
        k.interaction(drug(&k, "anticoagulant"), drug(&k, "nsaid"))
            .is_some()
    );
    // A rule for one drug does not reach a whole class.
    assert!(
        k.interaction(drug(&k, "anticoagulant"), drug(&k, "paracetamol"))
            .is_none()
    );
    assert!(
        k.interaction(drug(&k, "amoxicillin"), drug(&k, "paracetamol"))
            .is_none()
    );
    assert!(
        k.interaction(drug(&k, "warfarin"), drug(&k, "warfarin"))
            .is_none()
    );
}

#[test]
fn the_worst_rule_wins_and_every_pair_is_reported_once() {
    let k = knowledge();
    let medicines = [
        drug(&k, "warfarin"),
        drug(&k, "paracetamol"),
        drug(&k, "ibuprofen"),
        drug(&k, "warfarin"),
    ];
    let found = k.interactions_among(&medicines);
    let pairs: Vec<(&str, &str, Severity)> = found
        .iter()
        .map(|i| (k.id_of(i.a), k.id_of(i.b), i.rule.severity))
        .collect();
    assert_eq!(
        pairs,
        [
            ("warfarin", "ibuprofen", Severity::Major),
            ("warfarin", "paracetamol", Severity::Moderate)
        ]
    );
}

#[test]
fn names_are_found_in_english_chinese_brands_and_through_the_dictionary() {
    let k = knowledge();
    let ids = |text: &str| -> Vec<String> {
        lookup(&k)
            .find(text)
            .iter()
            .map(|m| k.id_of(m.agent).to_owned())
            .collect()
    };
    assert_eq!(
        ids("Can I take Advil with my Coumadin?"),
        ["ibuprofen", "warfarin"]
    );
    assert_eq!(ids("我在吃华法林，能吃芬必得吗"), ["warfarin", "ibuprofen"]);
    assert_eq!(ids("I'm on blood thinners"), ["anticoagulant"]);
    assert!(ids("I feel warm and tired").is_empty());
    // 头孢氨苄 is one drug, not the class 头孢 plus leftovers.
    assert_eq!(ids("医生给我开了头孢氨苄"), ["cefalexin"]);

    let lexicon =
        DrugLexicon::from_names(["jantoven", "marevan"]).with_variants([("marevan", "warfarin")]);
    let with_dictionary = NameLookup {
        knowledge: &k,
        lexicon: Some(&lexicon),
    };
    assert_eq!(
        with_dictionary.resolve("Marevan").map(|a| k.id_of(a)),
        Some("warfarin")
    );
    assert_eq!(lookup(&k).resolve("Marevan"), None);
    // A combination brand is each of its components.
    let lexicon = DrugLexicon::from_names(["duoprofen"])
        .with_variants([("duoprofen", "ibuprofen/acetaminophen")]);
    let combined = NameLookup {
        knowledge: &k,
        lexicon: Some(&lexicon),
    };
    let parts: Vec<&str> = combined
        .resolve_all("Duoprofen")
        .into_iter()
        .map(|a| k.id_of(a))
        .collect();
    assert_eq!(parts, ["ibuprofen", "paracetamol"]);
    let found: Vec<&str> = combined
        .find("I took duoprofen")
        .iter()
        .map(|m| k.id_of(m.agent))
        .collect();
    assert_eq!(found, ["ibuprofen", "paracetamol"]);
    assert_eq!(
        lookup(&k).resolve("华法林").map(|a| k.id_of(a)),
        Some("warfarin")
    );
    assert_eq!(
        lookup(&k).resolve("  Cephalexin ").map(|a| k.id_of(a)),
        Some("cefalexin")
    );
}

#[test]
fn statements_of_taking_and_allergy_are_told_from_questions_and_negations() {
    let k = knowledge();
    let said = |text: &str| -> Vec<(StatementKind, String)> {
        lookup(&k)
            .statements(text)
            .into_iter()
            .map(|s| (s.kind, k.id_of(s.agent).to_owned()))
            .collect()
    };
    use StatementKind::{AllergicTo, Takes};
    assert_eq!(
        said("I take warfarin and I'm allergic to penicillin. Can I take ibuprofen?"),
        [
            (Takes, "warfarin".into()),
            (AllergicTo, "penicillin".into())
        ]
    );
    assert_eq!(
        said("I've been on Coumadin for years"),
        [(Takes, "warfarin".into())]
    );
    assert_eq!(
        said("penicillin allergy"),
        [(AllergicTo, "penicillin".into())]
    );
    assert_eq!(
        said("I take warfarin, paracetamol and amoxicillin"),
        [
            (Takes, "warfarin".into()),
            (Takes, "paracetamol".into()),
            (Takes, "amoxicillin".into())
        ]
    );
    assert_eq!(
        said("I take warfarin, can I take ibuprofen?"),
        [(Takes, "warfarin".into())]
    );
    assert_eq!(
        said("我在吃华法林，阿莫西林"),
        [(Takes, "warfarin".into()), (Takes, "amoxicillin".into())]
    );
    assert_eq!(
        said("我在吃华法林，对青霉素过敏"),
        [
            (Takes, "warfarin".into()),
            (AllergicTo, "penicillin".into())
        ]
    );
    assert_eq!(
        said("我对阿莫西林过敏"),
        [(AllergicTo, "amoxicillin".into())]
    );
    for nothing in [
        "Can I take ibuprofen?",
        "Should I take paracetamol or ibuprofen",
        "I stopped taking warfarin last month",
        "I'm not allergic to penicillin",
        "I don't take any blood thinners",
        "我能吃布洛芬吗",
        "我不过敏青霉素",
        "ibuprofen is good for headaches",
    ] {
        assert!(said(nothing).is_empty(), "{nothing:?}: {:?}", said(nothing));
    }
}

#[test]
fn allergies_conflict_with_their_class_and_warn_of_cross_reactivity() {
    let k = knowledge();
    let penicillin = drug(&k, "penicillin");
    let amoxicillin = drug(&k, "amoxicillin");
    let cefalexin = drug(&k, "cefalexin");
    let c = k.allergy_conflict(penicillin, amoxicillin).unwrap();
    assert_eq!(c.risk, AllergyRisk::Avoid);
    let c = k.allergy_conflict(penicillin, cefalexin).unwrap();
    assert_eq!(c.risk, AllergyRisk::CrossReactive);
    assert_eq!(c.rule.unwrap().source, "NICE CG183");
    // An allergy to one penicillin is treated as a penicillin allergy for prescribing.
    assert_eq!(
        k.allergy_conflict(amoxicillin, cefalexin).unwrap().risk,
        AllergyRisk::CrossReactive
    );
    assert_eq!(
        k.allergy_conflict(amoxicillin, amoxicillin).unwrap().risk,
        AllergyRisk::Avoid
    );
    assert!(
        k.allergy_conflict(penicillin, drug(&k, "ibuprofen"))
            .is_none()
    );
}

fn load_error(drugs: &str, rules: &str) -> String {
    MedicineKnowledge::from_files([
        ("medicines/a.toml".to_owned(), drugs.to_owned()),
        ("medicines/b.toml".to_owned(), rules.to_owned()),
    ])
    .unwrap_err()
    .to_string()
}

#[test]
fn a_bad_file_is_refused_with_its_file_and_field() {
    let unknown_class =
        CLASSES_AND_DRUGS.replace(r#"classes = ["nsaid"]"#, r#"classes = ["nsiad"]"#);
    assert_eq!(
        load_error(&unknown_class, RULES),
        r#"medicines/a.toml: drug "ibuprofen" classes: "nsiad" is not a class"#
    );
    let clash = CLASSES_AND_DRUGS.replace(
        r#"names = ["advil", "nurofen"]"#,
        r#"names = ["advil", "coumadin"]"#,
    );
    assert!(
        load_error(&clash, RULES).starts_with(
            r#"medicines/a.toml: drug "ibuprofen" names: name "coumadin" is also drug "warfarin""#
        ),
        "{}",
        load_error(&clash, RULES)
    );
    let twice = format!(
        "{RULES}\n[[interaction]]\na = \"nsaid\"\nb = \"anticoagulant\"\nseverity = \"moderate\"\nmechanism = \"m\"\nadvice = \"a\"\nsource = \"s\"\n"
    );
    assert!(load_error(CLASSES_AND_DRUGS, &twice).contains("the same pair has a rule already"));
    let no_source = RULES.replace("source = \"BNF Appendix 1\"", "source = \" \"");
    assert!(load_error(CLASSES_AND_DRUGS, &no_source).ends_with("source: is required"));
    let dangling = RULES.replace("b = \"nsaid\"", "b = \"aspirin\"");
    assert!(
        load_error(CLASSES_AND_DRUGS, &dangling)
            .contains(r#""aspirin" is neither a drug nor a class"#)
    );
    let bad_severity = RULES.replace("severity = \"major\"", "severity = \"severe\"");
    assert!(load_error(CLASSES_AND_DRUGS, &bad_severity).starts_with("medicines/b.toml: line"));
    let bad_atc = CLASSES_AND_DRUGS.replace("atc = \"B01AA03\"", "atc = \"warfarin\"");
    assert!(load_error(&bad_atc, RULES).contains(r#"drug "warfarin" atc"#));
}

#[test]
fn the_built_in_set_is_large_and_covers_the_classes_that_matter() {
    let knowledge = crate::assessment::ClinicalKnowledge::builtin();
    let k = &knowledge.medicines;
    assert!(
        k.interactions.len() >= 150,
        "{} interaction rules",
        k.interactions.len()
    );
    assert!(k.drugs.len() >= 150, "{} drugs", k.drugs.len());
    assert!(
        k.allergies.len() >= 8,
        "{} allergy rules",
        k.allergies.len()
    );
    let named = |id: &str| {
        let agent = k.by_id(id).unwrap_or_else(|| panic!("{id} is in the data"));
        k.interactions
            .iter()
            .any(|r| k.covers(r.a, agent) || k.covers(r.b, agent))
    };
    for id in [
        "warfarin",
        "apixaban",
        "clopidogrel",
        "aspirin",
        "sertraline",
        "phenelzine",
        "tramadol",
        "citalopram",
        "clarithromycin",
        "simvastatin",
        "rifampicin",
        "fluvoxamine",
        "tizanidine",
        "glyceryl_trinitrate",
        "sildenafil",
        "lithium",
        "methotrexate",
        "spironolactone",
        "ramipril",
        "digoxin",
        "theophylline",
        "ibuprofen",
        "amiodarone",
    ] {
        assert!(named(id), "no interaction rule covers {id}");
    }
    for (a, b) in [
        ("warfarin", "ibuprofen"),
        ("phenelzine", "sertraline"),
        ("glyceryl_trinitrate", "sildenafil"),
        ("simvastatin", "clarithromycin"),
        ("tizanidine", "fluvoxamine"),
        ("lithium", "ramipril"),
        ("methotrexate", "co_trimoxazole"),
        ("spironolactone", "ramipril"),
        ("digoxin", "amiodarone"),
        ("theophylline", "ciprofloxacin"),
        ("citalopram", "amiodarone"),
    ] {
        assert!(
            k.interaction(k.by_id(a).unwrap(), k.by_id(b).unwrap())
                .is_some(),
            "{a} + {b} is not flagged"
        );
    }
    assert!(
        k.drugs
            .iter()
            .all(|d| !d.source.is_empty() && !d.name_zh.is_empty())
    );
    assert!(k.interactions.iter().all(|r| !r.source.is_empty()));
}

mod any_text {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a patient or a model writes (any Unicode, case folding that changes byte
        /// lengths such as ẞ and İ), finding names and statements never panics.
        #[test]
        fn finding_medicines_never_panics(text in "\\PC{0,200}", glue in prop::sample::select(vec![" but ", " and I ", " and I'm ", "，但是", " while I "])) {
            let k = knowledge();
            let written = format!("ẞ{text}{glue}İ warfarin{text}");
            let _ = lookup(&k).find(&written);
            let _ = lookup(&k).statements(&written);
            let _ = lookup(&k).resolve(&written);
        }
    }

    #[test]
    fn case_folding_that_changes_lengths_is_cut_safely() {
        let k = knowledge();
        assert!(lookup(&k).statements("ẞ but İ").is_empty());
        assert_eq!(lookup(&k).find("ẞİ but I take warfarin").len(), 1);
    }
}
