//! The clinical knowledge the assessment reads: the findings vocabulary and the conditions, from the
//! TOML files described in data/README.md. Everything is checked on load, so a running assessment
//! never meets a dangling finding id or a condition without its patient texts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::Deserialize;

use crate::domain::TriageLevel;
use crate::triage::text::Phrases;

/// The files built into the binary: (path under data/, contents).
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/clinical_data.rs"));

/// Why a set of knowledge files could not be used. Displays as one line naming the file and field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct KnowledgeError {
    pub file: String,
    pub field: String,
    pub message: String,
}

fn error(file: &str, field: impl Into<String>, message: impl Into<String>) -> KnowledgeError {
    KnowledgeError {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// What kind of thing a finding is: only symptoms and signs need explaining by a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    #[default]
    Symptom,
    Sign,
    /// Risk factors, history, medicines, exposures.
    Context,
    /// How something is: onset, severity, course.
    Modifier,
    Demographic,
}

/// Index of a finding in [`ClinicalKnowledge::findings`].
pub type FindingIndex = usize;

#[derive(Debug)]
pub struct Finding {
    pub id: String,
    pub label: String,
    pub label_zh: String,
    pub kind: FindingKind,
    pub phrases: Phrases,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prevalence {
    VeryCommon,
    Common,
    Uncommon,
    Rare,
    VeryRare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexLimit {
    #[default]
    Any,
    Female,
    Male,
}

/// The patient-facing texts of a condition in one language.
#[derive(Debug, Clone)]
pub struct PatientText {
    pub about: String,
    pub now: String,
    pub seek_care: String,
}

#[derive(Debug)]
pub struct Condition {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    pub synonyms: Vec<String>,
    pub synonyms_zh: Vec<String>,
    pub icd10: String,
    pub prevalence: Prevalence,
    pub sex: SexLimit,
    pub age_min_years: Option<f32>,
    pub age_max_years: Option<f32>,
    pub urgency: TriageLevel,
    pub red_flags: Vec<FindingIndex>,
    pub raise_to_urgent: Vec<FindingIndex>,
    /// (finding, weight 1–5), supporting.
    pub findings: Vec<(FindingIndex, u8)>,
    /// (finding, weight 1–5), arguing against.
    pub against: Vec<(FindingIndex, u8)>,
    pub english: PatientText,
    pub chinese: PatientText,
    /// First-line options, for doctors only.
    pub treatment: Vec<String>,
    pub source: String,
    pub reviewed_by: String,
    /// The file it came from, for messages about it.
    pub file: String,
}

/// Findings that come from numbers and demographics rather than from phrases (data/README.md).
pub const COMPUTED_FINDINGS: &[(&str, &str, &str, FindingKind)] = &[
    ("fever", "fever", "发热", FindingKind::Sign),
    (
        "high_fever",
        "high fever (≥ 39.5 °C)",
        "高热（≥39.5℃）",
        FindingKind::Sign,
    ),
    (
        "hypothermia",
        "low temperature (< 35 °C)",
        "低体温（<35℃）",
        FindingKind::Sign,
    ),
    (
        "tachycardia",
        "fast heart rate (> 100/min)",
        "心动过速（>100次/分）",
        FindingKind::Sign,
    ),
    (
        "severe_tachycardia",
        "very fast heart rate (≥ 130/min)",
        "严重心动过速（≥130次/分）",
        FindingKind::Sign,
    ),
    (
        "bradycardia",
        "slow heart rate (< 50/min)",
        "心动过缓（<50次/分）",
        FindingKind::Sign,
    ),
    (
        "hypotension",
        "low blood pressure (systolic < 90)",
        "低血压（收缩压<90）",
        FindingKind::Sign,
    ),
    (
        "hypertension",
        "raised blood pressure (≥ 140/90)",
        "血压升高（≥140/90）",
        FindingKind::Sign,
    ),
    (
        "severe_hypertension",
        "very high blood pressure (≥ 180/120)",
        "重度高血压（≥180/120）",
        FindingKind::Sign,
    ),
    (
        "tachypnoea",
        "fast breathing (≥ 22/min)",
        "呼吸急促（≥22次/分）",
        FindingKind::Sign,
    ),
    (
        "severe_tachypnoea",
        "very fast breathing (≥ 30/min)",
        "严重呼吸急促（≥30次/分）",
        FindingKind::Sign,
    ),
    (
        "low_oxygen_saturation",
        "oxygen saturation 92–94 %",
        "血氧饱和度92–94%",
        FindingKind::Sign,
    ),
    (
        "hypoxia",
        "low oxygen saturation (< 92 %)",
        "低氧（血氧<92%）",
        FindingKind::Sign,
    ),
    (
        "hyperglycaemia",
        "high blood glucose (≥ 11.1 mmol/L)",
        "高血糖（≥11.1 mmol/L）",
        FindingKind::Sign,
    ),
    (
        "severe_hyperglycaemia",
        "very high blood glucose (≥ 20 mmol/L)",
        "严重高血糖（≥20 mmol/L）",
        FindingKind::Sign,
    ),
    (
        "hypoglycaemia",
        "low blood glucose (< 4.0 mmol/L)",
        "低血糖（<4.0 mmol/L）",
        FindingKind::Sign,
    ),
    (
        "severe_hypoglycaemia",
        "very low blood glucose (< 3.0 mmol/L)",
        "严重低血糖（<3.0 mmol/L）",
        FindingKind::Sign,
    ),
    (
        "infant",
        "infant (under 1 year)",
        "婴儿（<1岁）",
        FindingKind::Demographic,
    ),
    (
        "young_infant",
        "young infant (under 3 months)",
        "小婴儿（<3个月）",
        FindingKind::Demographic,
    ),
    (
        "child",
        "child (1–12 years)",
        "儿童（1–12岁）",
        FindingKind::Demographic,
    ),
    (
        "age_over_50",
        "age 50 or over",
        "50岁及以上",
        FindingKind::Demographic,
    ),
    (
        "older_adult",
        "age 65 or over",
        "65岁及以上",
        FindingKind::Demographic,
    ),
    ("male", "male", "男性", FindingKind::Demographic),
    ("female", "female", "女性", FindingKind::Demographic),
    ("pregnant", "pregnant", "妊娠", FindingKind::Demographic),
    (
        "lasting_days",
        "symptoms for 3 days or more",
        "症状持续3天以上",
        FindingKind::Modifier,
    ),
    (
        "lasting_weeks",
        "symptoms for 2 weeks or more",
        "症状持续2周以上",
        FindingKind::Modifier,
    ),
];

/// Every finding and condition medbot knows, checked.
#[derive(Debug)]
pub struct ClinicalKnowledge {
    pub findings: Vec<Finding>,
    pub conditions: Vec<Condition>,
    /// Drugs, classes, interactions and allergy rules (`medicines/`).
    pub medicines: crate::medicines::MedicineKnowledge,
    by_id: HashMap<String, FindingIndex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsFile {
    #[serde(default)]
    finding: Vec<FindingEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingEntry {
    id: String,
    label: String,
    label_zh: String,
    #[serde(default)]
    kind: FindingKind,
    #[serde(default)]
    en: Vec<String>,
    #[serde(default)]
    zh: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsFile {
    #[serde(default)]
    condition: Vec<ConditionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionEntry {
    id: String,
    name: String,
    name_zh: String,
    #[serde(default)]
    synonyms: Vec<String>,
    #[serde(default)]
    synonyms_zh: Vec<String>,
    icd10: String,
    prevalence: Prevalence,
    #[serde(default)]
    sex: SexLimit,
    age_min_years: Option<f32>,
    age_max_years: Option<f32>,
    urgency: TriageLevel,
    #[serde(default)]
    red_flags: Vec<String>,
    #[serde(default)]
    raise_to_urgent: Vec<String>,
    findings: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    against: std::collections::BTreeMap<String, u8>,
    about_en: String,
    now_en: String,
    seek_care_en: String,
    about_zh: String,
    now_zh: String,
    seek_care_zh: String,
    #[serde(default)]
    treatment: Vec<String>,
    source: String,
    reviewed_by: String,
}

static ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*$").expect("regex"));
static ICD10: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$").expect("regex"));

/// A TOML error as one line with its line number.
pub(crate) fn toml_error(file: &str, source: &str, e: &toml::de::Error) -> KnowledgeError {
    let line = e.span().map(|span| {
        source[..span.start.min(source.len())]
            .lines()
            .count()
            .max(1)
    });
    let message = e.message().replace('\n', " ");
    // The field serde names ("missing field `icd10`") is the useful part; the line finds it.
    let field = match line {
        Some(line) => format!("line {line}"),
        None => "file".to_owned(),
    };
    error(file, field, message)
}

impl ClinicalKnowledge {
    /// The knowledge built into this binary (the files in data/ when it was built).
    pub fn embedded() -> Result<Self, KnowledgeError> {
        Self::from_files(
            EMBEDDED
                .iter()
                .map(|(p, c)| ((*p).to_owned(), (*c).to_owned())),
        )
    }

    /// The built-in knowledge, parsed once per process. The data is checked by the tests, so a
    /// failure here is a build that never passed them.
    pub fn builtin() -> Arc<Self> {
        static BUILTIN: LazyLock<Arc<ClinicalKnowledge>> = LazyLock::new(|| {
            Arc::new(ClinicalKnowledge::embedded().expect("the built-in clinical data is valid"))
        });
        Arc::clone(&BUILTIN)
    }

    /// Reads a folder laid out like data/ (`findings/*.toml`, `conditions/*.toml`,
    /// `medicines/*.toml`). A folder without `medicines/` uses the built-in medicine files, so
    /// that editing conditions never switches the interaction checks off.
    ///
    /// # Errors
    /// A [`KnowledgeError`] naming the first file and field that is wrong.
    pub fn from_dir(dir: &Path) -> Result<Self, KnowledgeError> {
        let mut files = Vec::new();
        for folder in ["findings", "conditions", "medicines"] {
            let sub = dir.join(folder);
            if folder == "medicines" && !sub.exists() {
                files.extend(
                    EMBEDDED
                        .iter()
                        .filter(|(p, _)| p.starts_with("medicines/"))
                        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned())),
                );
                continue;
            }
            let entries = std::fs::read_dir(&sub)
                .map_err(|e| error(&sub.display().to_string(), "folder", e.to_string()))?;
            let mut paths: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| error(&shown, "file", e.to_string()))?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                files.push((format!("{folder}/{name}"), text));
            }
        }
        Self::from_files(files).map_err(|mut e| {
            e.file = dir.join(&e.file).display().to_string();
            e
        })
    }

    /// The newest modification time of the files in a folder laid out like data/.
    pub fn modified(dir: &Path) -> Option<std::time::SystemTime> {
        ["findings", "conditions", "medicines"]
            .iter()
            .filter_map(|f| std::fs::read_dir(dir.join(f)).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()
    }

    /// Builds the knowledge from (path, contents) pairs; paths start with `findings/` or
    /// `conditions/`.
    ///
    /// # Errors
    /// A [`KnowledgeError`] naming the first file and field that is wrong.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, KnowledgeError> {
        let (medicine_files, files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(path, _)| path.starts_with("medicines/"));
        let (findings_files, condition_files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(path, _)| path.starts_with("findings/"));
        let medicines = crate::medicines::MedicineKnowledge::from_files(medicine_files)?;
        let mut findings: Vec<Finding> = Vec::new();
        let mut by_id: HashMap<String, FindingIndex> = HashMap::new();
        for (path, text) in &findings_files {
            let parsed: FindingsFile =
                toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
            for entry in parsed.finding {
                let field = |name: &str| format!("finding {:?} {name}", entry.id);
                if !ID.is_match(&entry.id) {
                    return Err(error(path, field("id"), "must be snake_case (a-z, 0-9, _)"));
                }
                if by_id.contains_key(&entry.id) {
                    return Err(error(path, field("id"), "defined twice"));
                }
                if entry.label.trim().is_empty() || entry.label_zh.trim().is_empty() {
                    return Err(error(
                        path,
                        field("label"),
                        "label and label_zh are required",
                    ));
                }
                if entry
                    .en
                    .iter()
                    .chain(&entry.zh)
                    .any(|p| p.trim().is_empty())
                {
                    return Err(error(path, field("en/zh"), "empty pattern"));
                }
                if let Some(p) = entry
                    .zh
                    .iter()
                    .find(|p| !p.chars().any(crate::domain::is_han))
                {
                    return Err(error(
                        path,
                        field("zh"),
                        format!("{p:?} has no Chinese characters"),
                    ));
                }
                if let Some(p) = entry
                    .en
                    .iter()
                    .find(|p| p.chars().any(crate::domain::is_han))
                {
                    return Err(error(
                        path,
                        field("en"),
                        format!("{p:?} has Chinese characters"),
                    ));
                }
                let patterns: Vec<&str> = entry
                    .en
                    .iter()
                    .chain(&entry.zh)
                    .map(String::as_str)
                    .collect();
                by_id.insert(entry.id.clone(), findings.len());
                findings.push(Finding {
                    id: entry.id,
                    label: entry.label,
                    label_zh: entry.label_zh,
                    kind: entry.kind,
                    phrases: Phrases::new(&patterns),
                });
            }
        }
        for (id, label, label_zh, kind) in COMPUTED_FINDINGS {
            if !by_id.contains_key(*id) {
                by_id.insert((*id).to_owned(), findings.len());
                findings.push(Finding {
                    id: (*id).to_owned(),
                    label: (*label).to_owned(),
                    label_zh: (*label_zh).to_owned(),
                    kind: *kind,
                    phrases: Phrases::new(&[]),
                });
            }
        }

        let mut conditions = Vec::new();
        let mut condition_ids = HashMap::new();
        for (path, text) in &condition_files {
            let parsed: ConditionsFile =
                toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
            for entry in parsed.condition {
                let condition = Self::check_condition(path, entry, &by_id)?;
                if condition_ids.insert(condition.id.clone(), ()).is_some() {
                    return Err(error(
                        path,
                        format!("condition {:?} id", condition.id),
                        "defined twice",
                    ));
                }
                conditions.push(condition);
            }
        }
        if conditions.is_empty() {
            return Err(error("conditions/", "condition", "no conditions found"));
        }
        Ok(Self {
            findings,
            conditions,
            medicines,
            by_id,
        })
    }

    fn check_condition(
        path: &str,
        entry: ConditionEntry,
        by_id: &HashMap<String, FindingIndex>,
    ) -> Result<Condition, KnowledgeError> {
        let id = entry.id.clone();
        let field = |name: &str| format!("condition {id:?} {name}");
        if !ID.is_match(&entry.id) {
            return Err(error(path, field("id"), "must be snake_case (a-z, 0-9, _)"));
        }
        if !ICD10.is_match(&entry.icd10) {
            return Err(error(
                path,
                field("icd10"),
                format!("{:?} is not an ICD-10 code (like J18.9)", entry.icd10),
            ));
        }
        for (name, value) in [
            ("name", &entry.name),
            ("name_zh", &entry.name_zh),
            ("about_en", &entry.about_en),
            ("now_en", &entry.now_en),
            ("seek_care_en", &entry.seek_care_en),
            ("about_zh", &entry.about_zh),
            ("now_zh", &entry.now_zh),
            ("seek_care_zh", &entry.seek_care_zh),
            ("source", &entry.source),
        ] {
            if value.trim().is_empty() {
                return Err(error(path, field(name), "must not be empty"));
            }
        }
        for (name, value) in [
            ("name_zh", &entry.name_zh),
            ("about_zh", &entry.about_zh),
            ("now_zh", &entry.now_zh),
            ("seek_care_zh", &entry.seek_care_zh),
        ] {
            if !value.chars().any(crate::domain::is_han) {
                return Err(error(path, field(name), "must be written in Chinese"));
            }
        }
        if let (Some(lo), Some(hi)) = (entry.age_min_years, entry.age_max_years)
            && lo > hi
        {
            return Err(error(
                path,
                field("age_min_years"),
                "is above age_max_years",
            ));
        }
        if entry.findings.is_empty() {
            return Err(error(path, field("findings"), "needs at least one finding"));
        }
        let lookup = |name: &str, finding: &str| {
            by_id
                .get(finding)
                .copied()
                .ok_or_else(|| error(path, field(name), format!("unknown finding {finding:?}")))
        };
        let weighted = |name: &str, map: &std::collections::BTreeMap<String, u8>| {
            map.iter()
                .map(|(finding, &weight)| {
                    if !(1..=5).contains(&weight) {
                        return Err(error(
                            path,
                            field(name),
                            format!("weight of {finding:?} must be 1 to 5, not {weight}"),
                        ));
                    }
                    Ok((lookup(name, finding)?, weight))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let listed = |name: &str, list: &[String]| {
            list.iter()
                .map(|f| lookup(name, f))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Condition {
            findings: weighted("findings", &entry.findings)?,
            against: weighted("against", &entry.against)?,
            red_flags: listed("red_flags", &entry.red_flags)?,
            raise_to_urgent: listed("raise_to_urgent", &entry.raise_to_urgent)?,
            id: entry.id,
            name: entry.name,
            name_zh: entry.name_zh,
            synonyms: entry.synonyms,
            synonyms_zh: entry.synonyms_zh,
            icd10: entry.icd10,
            prevalence: entry.prevalence,
            sex: entry.sex,
            age_min_years: entry.age_min_years,
            age_max_years: entry.age_max_years,
            urgency: entry.urgency,
            english: PatientText {
                about: entry.about_en,
                now: entry.now_en,
                seek_care: entry.seek_care_en,
            },
            chinese: PatientText {
                about: entry.about_zh,
                now: entry.now_zh,
                seek_care: entry.seek_care_zh,
            },
            treatment: entry.treatment,
            source: entry.source,
            reviewed_by: entry.reviewed_by,
            file: path.to_owned(),
        })
    }

    /// The index of a finding by id.
    pub fn finding(&self, id: &str) -> Option<FindingIndex> {
        self.by_id.get(id).copied()
    }

    pub fn condition(&self, id: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.id == id)
    }

    /// The names of the embedded files, for checks that every file in data/ is built in.
    pub fn embedded_files() -> impl Iterator<Item = &'static str> {
        EMBEDDED.iter().map(|(path, _)| *path)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const FINDINGS: &str = r#"
[[finding]]
id = "fever"
label = "fever"
label_zh = "发热"
en = ["fever*", "feverish"]
zh = ["发烧", "发热"]

[[finding]]
id = "headache"
label = "headache"
label_zh = "头痛"
en = ["headache*", "head ~ hurts"]
zh = ["头痛", "头~疼"]

[[finding]]
id = "neck_stiffness"
label = "neck stiffness"
label_zh = "颈部僵硬"
en = ["stiff neck", "neck ~ stiff*"]
zh = ["脖子~僵", "颈~僵"]

[[finding]]
id = "photophobia"
label = "light hurts the eyes"
label_zh = "畏光"
en = ["light hurts ~ eyes", "photophobia"]
zh = ["怕光", "畏光"]

[[finding]]
id = "runny_nose"
label = "runny nose"
label_zh = "流鼻涕"
en = ["runny nose", "nose ~ running"]
zh = ["流鼻涕", "流涕"]

[[finding]]
id = "smoker"
label = "smoker"
label_zh = "吸烟"
kind = "context"
en = ["smoke*", "smoker"]
zh = ["吸烟", "抽烟"]
"#;

    pub(crate) fn condition(
        id: &str,
        icd10: &str,
        prevalence: &str,
        urgency: &str,
        findings: &str,
    ) -> String {
        format!(
            r#"
[[condition]]
id = "{id}"
name = "{id} name"
name_zh = "病名"
icd10 = "{icd10}"
prevalence = "{prevalence}"
urgency = "{urgency}"
findings = {{ {findings} }}
against = {{ lasting_weeks = 3 }}
about_en = "About it."
now_en = "Do this now."
seek_care_en = "See a doctor if."
about_zh = "关于。"
now_zh = "现在。"
seek_care_zh = "就医。"
source = "ICD-10-CM {icd10}"
reviewed_by = ""
"#
        )
    }

    pub(crate) fn fixture() -> ClinicalKnowledge {
        let conditions = [
            condition(
                "meningitis",
                "G00.9",
                "rare",
                "emergency",
                "fever = 3, headache = 3, neck_stiffness = 5, photophobia = 3",
            ),
            condition(
                "common_cold",
                "J00",
                "very_common",
                "self_care",
                "runny_nose = 4, fever = 1, headache = 1",
            ),
            condition(
                "tension_headache",
                "G44.2",
                "very_common",
                "self_care",
                "headache = 4",
            ),
        ]
        .concat();
        ClinicalKnowledge::from_files([
            ("findings/test.toml".to_owned(), FINDINGS.to_owned()),
            ("conditions/test.toml".to_owned(), conditions),
        ])
        .expect("the fixture is valid")
    }

    fn load_error(findings: &str, conditions: &str) -> String {
        ClinicalKnowledge::from_files([
            ("findings/a.toml".to_owned(), findings.to_owned()),
            ("conditions/b.toml".to_owned(), conditions.to_owned()),
        ])
        .expect_err("invalid")
        .to_string()
    }

    #[test]
    fn the_fixture_loads_with_the_computed_findings() {
        let k = fixture();
        assert_eq!(k.conditions.len(), 3);
        assert!(k.finding("hypoxia").is_some() && k.finding("headache").is_some());
        assert_eq!(
            k.findings[k.finding("smoker").unwrap()].kind,
            FindingKind::Context
        );
    }

    #[test]
    fn a_malformed_file_is_named_in_one_line_with_its_field() {
        let good = condition("x", "J00", "common", "routine", "headache = 2");
        let cases = [
            (
                good.replace("icd10 = \"J00\"", "icd10 = \"J0\""),
                "conditions/b.toml: condition \"x\" icd10",
            ),
            (
                good.replace("headache = 2", "headache = 7"),
                "condition \"x\" findings: weight of \"headache\" must be 1 to 5",
            ),
            (
                good.replace("headache = 2", "headach = 2"),
                "condition \"x\" findings: unknown finding \"headach\"",
            ),
            (
                good.replace("name_zh = \"病名\"", "name_zh = \"\""),
                "condition \"x\" name_zh: must not be empty",
            ),
            (
                good.replace("about_zh = \"关于。\"", "about_zh = \"about\""),
                "condition \"x\" about_zh: must be written in Chinese",
            ),
            (
                good.replace("prevalence = \"common\"", "prevalence = \"often\""),
                "conditions/b.toml: line",
            ),
            (
                good.replace("icd10 = \"J00\"\n", ""),
                "missing field `icd10`",
            ),
            (
                good.replace("reviewed_by", "reviewd_by"),
                "unknown field `reviewd_by`",
            ),
            (format!("{good}{good}"), "condition \"x\" id: defined twice"),
        ];
        for (conditions, expected) in cases {
            let message = load_error(FINDINGS, &conditions);
            assert!(
                message.contains(expected),
                "{message:?} should contain {expected:?}"
            );
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
        let message = load_error(&FINDINGS.replace("\"头痛\", ", "\"headache\", "), &good);
        assert!(message.contains("finding \"headache\" zh"), "{message}");
        let message = load_error(&format!("{FINDINGS}{}", &FINDINGS[..200]), &good);
        assert!(message.contains("findings/a.toml"), "{message}");
    }

    #[test]
    fn a_folder_is_read_and_its_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("findings")).unwrap();
        std::fs::create_dir_all(dir.path().join("conditions")).unwrap();
        std::fs::write(dir.path().join("findings/f.toml"), FINDINGS).unwrap();
        std::fs::write(
            dir.path().join("conditions/c.toml"),
            condition("x", "J00", "common", "routine", "headache = 2"),
        )
        .unwrap();
        assert_eq!(
            ClinicalKnowledge::from_dir(dir.path())
                .unwrap()
                .conditions
                .len(),
            1
        );
        std::fs::write(
            dir.path().join("conditions/c.toml"),
            "[[condition]]\nid = 3\n",
        )
        .unwrap();
        let message = ClinicalKnowledge::from_dir(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("conditions/c.toml") && message.contains("line 2"),
            "{message}"
        );
    }

    #[test]
    fn a_folder_without_medicines_keeps_the_built_in_ones_and_a_bad_medicines_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("findings")).unwrap();
        std::fs::create_dir_all(dir.path().join("conditions")).unwrap();
        std::fs::write(dir.path().join("findings/f.toml"), FINDINGS).unwrap();
        std::fs::write(
            dir.path().join("conditions/c.toml"),
            condition("x", "J00", "common", "routine", "headache = 2"),
        )
        .unwrap();
        let knowledge = ClinicalKnowledge::from_dir(dir.path()).unwrap();
        assert_eq!(
            knowledge.medicines.interactions.len(),
            ClinicalKnowledge::builtin().medicines.interactions.len()
        );
        std::fs::create_dir_all(dir.path().join("medicines")).unwrap();
        std::fs::write(
            dir.path().join("medicines/rules.toml"),
            "[[interaction]]\na = \"warfarin\"\nb = \"ibuprofen\"\nseverity = \"major\"\nmechanism = \"m\"\nadvice = \"a\"\nsource = \"s\"\n",
        )
        .unwrap();
        let message = ClinicalKnowledge::from_dir(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("medicines/rules.toml: interaction 1 (warfarin + ibuprofen) a: \"warfarin\" is neither a drug nor a class"),
            "{message}"
        );
    }
}
