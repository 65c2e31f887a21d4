//! From words to findings: every finding in the vocabulary is looked for in the text (with negation),
//! the numbers are read, and the computed findings (vital-sign thresholds, age groups, sex) follow
//! from them. Findings of several messages fold into one picture, the newest word winning.

use std::sync::LazyLock;

use super::knowledge::{ClinicalKnowledge, FindingIndex};
use super::measure::Measurements;
use crate::triage::text::{Mention, Phrases, Text};

/// What is known about the person and their complaint.
#[derive(Debug, Clone)]
pub struct Findings {
    /// One entry per finding of the knowledge it was extracted with.
    mentions: Vec<Mention>,
    pub measurements: Measurements,
}

static MALE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "man",
        "male",
        "boy",
        "he",
        "his",
        "him",
        "son",
        "husband",
        "father",
        "dad",
        "grandfather",
        "grandpa",
        "gentleman",
        "mr",
        "brother",
        "nephew",
        "uncle",
        "baby boy",
        "男",
        "先生",
        "儿子",
        "老公",
        "丈夫",
        "爸",
        "爷爷",
        "外公",
        "男孩",
        "小伙",
        "哥哥",
        "弟弟",
        "老头",
    ])
});
static FEMALE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "woman",
        "female",
        "girl",
        "she",
        "her",
        "daughter",
        "wife",
        "mother",
        "mum",
        "mom",
        "grandmother",
        "grandma",
        "lady",
        "mrs",
        "ms",
        "sister",
        "niece",
        "aunt",
        "baby girl",
        "女",
        "女士",
        "女儿",
        "老婆",
        "妻子",
        "妈",
        "奶奶",
        "外婆",
        "姥姥",
        "女孩",
        "小姐",
        "姐姐",
        "妹妹",
        "她",
    ])
});
static PREGNANT: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "pregnan*",
        "expecting a baby",
        "weeks pregnant",
        "my bump",
        "gestation*",
        "gravid*",
        "primigravida",
        "multigravida",
        "g1p0",
        "g2p1",
        "antenatal",
        "trimester",
        "weeks gestation",
        "positive pregnancy test",
        "pregnancy test ~ positive",
        "positive test",
        "怀孕",
        "孕妇",
        "孕期",
        "怀了",
        "有孕",
        "孕~周",
        "孕早期",
        "孕中期",
        "孕晚期",
        "妊娠",
        "停经~周",
        "验孕~阳性",
        "验孕~两道杠",
        "试纸~两道杠",
        "测出~怀孕",
    ])
});
/// How long, in words rather than numbers.
static LONG_LASTING: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "for weeks",
        "for months",
        "for years",
        "for ages",
        "for a long time",
        "chronic*",
        "keeps coming back",
        "on and off for",
        "several weeks",
        "several months",
        "many years",
        "好几周",
        "好几个月",
        "很久",
        "长期",
        "反复",
        "多年",
        "几个月",
        "好几年",
        "慢性",
    ])
});
/// Findings only one sex can have, which settle the patient's sex whatever else the text says.
const MALE_ANATOMY: &[&str] = &[
    "testicular_pain",
    "scrotal_swelling",
    "high_riding_testis",
    "testicular_lump",
    "penile_redness_or_soreness",
];
const FEMALE_ANATOMY: &[&str] = &["vaginal_bleeding", "vaginal_discharge", "vaginal_dryness"];

/// "I" and "my": the patient is talking about themselves, so "my wife" says nothing of their sex.
static RELATIVE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "my ~ wife",
        "my ~ husband",
        "我老婆",
        "我老公",
        "我妻子",
        "我丈夫",
    ])
});

impl Findings {
    /// Reads one message.
    pub fn of(knowledge: &ClinicalKnowledge, message: &str) -> Self {
        let text = Text::new(message);
        let mut mentions: Vec<Mention> = knowledge
            .findings
            .iter()
            .map(|f| {
                if f.phrases.is_empty() {
                    Mention::None
                } else {
                    f.phrases.mention_in(&text)
                }
            })
            .collect();
        let measurements = Measurements::of(&text.normalized);
        // The body says more than the pronouns: "pain in my left ball ... don't want to tell my
        // mum" is a boy writing.
        let has = |ids: &[&str]| {
            ids.iter().any(|id| {
                knowledge
                    .finding(id)
                    .is_some_and(|i| mentions[i] == Mention::Present)
            })
        };
        let (male_body, female_body) = (has(MALE_ANATOMY), has(FEMALE_ANATOMY));
        let mut set = |id: &str, mention: Mention| {
            if let Some(i) = knowledge.finding(id)
                && mention > mentions[i]
            {
                mentions[i] = mention;
            }
        };
        let pregnant = match PREGNANT.mention_in(&text) {
            // "子宫增大如孕10周": a uterus the size of a pregnancy.
            Mention::Present if text.normalized.contains("如孕") => Mention::None,
            other => other,
        };
        set("pregnant", pregnant);
        // Sex from words counts only when the text points one way; a spouse mentioned in passing
        // says nothing about the writer.
        let spouse = RELATIVE.found_in(&text);
        let (mut male, mut female) = (MALE.found_in(&text), FEMALE.found_in(&text));
        if male_body {
            (male, female) = (true, false);
        } else if female_body {
            (male, female) = (false, true);
        }
        if pregnant == Mention::Present || (female && !male && !spouse) {
            set("female", Mention::Present);
        } else if male && !female && !spouse {
            set("male", Mention::Present);
        }
        if LONG_LASTING.found_in(&text) {
            set("lasting_weeks", Mention::Present);
            set("lasting_days", Mention::Present);
        }
        let lowered = &text.normalized;
        if let Some(sex) = clinical_sex(lowered) {
            set(sex, Mention::Present);
        }
        Self {
            mentions,
            measurements,
        }
    }

    /// Reads the messages of one topic, oldest first: later statements override earlier ones ("no,
    /// I don't have a fever" removes the fever), numbers are the newest stated.
    pub fn of_topic<'a>(
        knowledge: &ClinicalKnowledge,
        messages: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut all = Self {
            mentions: vec![Mention::None; knowledge.findings.len()],
            measurements: Measurements::default(),
        };
        for message in messages {
            all.overlay(&Self::of(knowledge, message));
        }
        all.derive(knowledge);
        all
    }

    fn overlay(&mut self, later: &Findings) {
        for (mine, theirs) in self.mentions.iter_mut().zip(&later.mentions) {
            if *theirs != Mention::None {
                *mine = *theirs;
            }
        }
        self.measurements.overlay(&later.measurements);
    }

    /// The findings that follow from numbers (data/README.md lists them and their thresholds).
    fn derive(&mut self, knowledge: &ClinicalKnowledge) {
        let m = self.measurements;
        let mut flags: Vec<(&str, bool)> = Vec::new();
        let t = m.temperature_c;
        flags.push(("fever", t.is_some_and(|t| t >= 38.0)));
        flags.push(("high_fever", t.is_some_and(|t| t >= 39.5)));
        flags.push(("hypothermia", t.is_some_and(|t| t < 35.0)));
        let hr = m.heart_rate;
        flags.push(("tachycardia", hr.is_some_and(|h| h > 100.0)));
        flags.push(("severe_tachycardia", hr.is_some_and(|h| h >= 130.0)));
        flags.push(("bradycardia", hr.is_some_and(|h| h < 50.0)));
        flags.push(("hypotension", m.systolic.is_some_and(|s| s < 90.0)));
        flags.push((
            "hypertension",
            m.systolic.is_some_and(|s| s >= 140.0) || m.diastolic.is_some_and(|d| d >= 90.0),
        ));
        flags.push((
            "severe_hypertension",
            m.systolic.is_some_and(|s| s >= 180.0) || m.diastolic.is_some_and(|d| d >= 120.0),
        ));
        let rr = m.respiratory_rate;
        flags.push(("tachypnoea", rr.is_some_and(|r| r >= 22.0)));
        flags.push(("severe_tachypnoea", rr.is_some_and(|r| r >= 30.0)));
        flags.push((
            "low_oxygen_saturation",
            m.spo2.is_some_and(|s| (92.0..95.0).contains(&s)),
        ));
        flags.push(("hypoxia", m.spo2.is_some_and(|s| s < 92.0)));
        let g = m.glucose_mmol;
        flags.push(("hyperglycaemia", g.is_some_and(|g| g >= 11.1)));
        flags.push(("severe_hyperglycaemia", g.is_some_and(|g| g >= 20.0)));
        flags.push(("hypoglycaemia", g.is_some_and(|g| g < 4.0)));
        flags.push(("severe_hypoglycaemia", g.is_some_and(|g| g < 3.0)));
        let age = m.age_years;
        flags.push(("infant", age.is_some_and(|a| a < 1.0)));
        flags.push(("young_infant", age.is_some_and(|a| a < 0.25)));
        flags.push(("child", age.is_some_and(|a| (1.0..13.0).contains(&a))));
        flags.push(("age_over_50", age.is_some_and(|a| a >= 50.0)));
        flags.push(("older_adult", age.is_some_and(|a| a >= 65.0)));
        let d = m.duration_days;
        flags.push(("lasting_days", d.is_some_and(|d| d >= 3.0)));
        flags.push(("lasting_weeks", d.is_some_and(|d| d >= 14.0)));
        for (id, on) in flags {
            if on && let Some(i) = knowledge.finding(id) {
                self.mentions[i] = Mention::Present;
            }
        }
        // A measured normal temperature outweighs an old "feverish".
        if let (Some(t), Some(i)) = (t, knowledge.finding("fever"))
            && t < 37.5
        {
            self.mentions[i] = Mention::Denied;
        }
        if let (Some(age), Some(i)) = (age, knowledge.finding("infant"))
            && age >= 1.0
        {
            self.mentions[i] = Mention::Denied;
        }
        if self.is_present_id(knowledge, "pregnant")
            && let Some(i) = knowledge.finding("female")
        {
            self.mentions[i] = Mention::Present;
        }
    }

    pub fn mention(&self, finding: FindingIndex) -> Mention {
        self.mentions.get(finding).copied().unwrap_or(Mention::None)
    }

    pub fn is_present(&self, finding: FindingIndex) -> bool {
        self.mention(finding) == Mention::Present
    }

    pub fn is_denied(&self, finding: FindingIndex) -> bool {
        self.mention(finding) == Mention::Denied
    }

    pub fn is_denied_id(&self, knowledge: &ClinicalKnowledge, id: &str) -> bool {
        knowledge.finding(id).is_some_and(|i| self.is_denied(i))
    }

    pub fn is_present_id(&self, knowledge: &ClinicalKnowledge, id: &str) -> bool {
        knowledge.finding(id).is_some_and(|i| self.is_present(i))
    }

    /// The findings present or denied, in vocabulary order.
    pub fn mentioned(&self) -> impl Iterator<Item = (FindingIndex, Mention)> + '_ {
        self.mentions
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != Mention::None)
            .map(|(i, m)| (i, *m))
    }
}

/// "34F", "65 M", "男，65岁", "患者女": the sex in clinical shorthand.
fn clinical_sex(lowered: &str) -> Option<&'static str> {
    static SHORT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?:^|[\s,(])\d{1,3}\s*(m|f)\b|(?:患者|病人|患儿)[，,：:\s]*(男|女)")
            .expect("regex")
    });
    let c = SHORT.captures(lowered)?;
    let sex = c.get(1).or_else(|| c.get(2))?.as_str();
    Some(if sex == "m" || sex == "男" {
        "male"
    } else {
        "female"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assessment::knowledge::tests::fixture;

    fn mention(k: &ClinicalKnowledge, messages: &[&str], id: &str) -> Mention {
        Findings::of_topic(k, messages.iter().copied()).mention(k.finding(id).unwrap())
    }

    #[test]
    fn anatomy_settles_the_patients_sex_over_pronouns() {
        let k = ClinicalKnowledge::builtin();
        let said = |text: &str, id: &str| mention(&k, &[text], id);
        let text = "really bad pain in my left ball, swollen, dont want to tell my mum";
        assert_eq!(said(text, "male"), Mention::Present);
        assert_ne!(said(text, "female"), Mention::Present);
        assert_eq!(said("my mum has chest pain", "female"), Mention::Present);
    }

    #[test]
    fn negation_in_both_languages() {
        let k = fixture();
        assert_eq!(
            mention(&k, &["no stiff neck"], "neck_stiffness"),
            Mention::Denied
        );
        assert_eq!(
            mention(&k, &["denies headache"], "headache"),
            Mention::Denied
        );
        assert_eq!(
            mention(&k, &["脖子不僵"], "neck_stiffness"),
            Mention::Denied
        );
        assert_eq!(mention(&k, &["没有头痛"], "headache"), Mention::Denied);
        assert_eq!(mention(&k, &["头很疼"], "headache"), Mention::Present);
    }

    #[test]
    fn third_and_first_person_with_ages_and_sex() {
        let k = fixture();
        let f = Findings::of_topic(&k, ["A 65-year-old man presents with a headache, T 38.4"]);
        assert!(f.is_present_id(&k, "male") && f.is_present_id(&k, "older_adult"));
        assert!(f.is_present_id(&k, "fever") && f.is_present_id(&k, "headache"));
        let f = Findings::of_topic(&k, ["my 7 week old daughter has a runny nose"]);
        assert!(f.is_present_id(&k, "female") && f.is_present_id(&k, "young_infant"));
        let f = Findings::of_topic(&k, ["I am 28 weeks pregnant with a headache"]);
        assert!(f.is_present_id(&k, "pregnant") && f.is_present_id(&k, "female"));
        let f = Findings::of_topic(&k, ["患者女，34岁，头痛三天"]);
        assert!(f.is_present_id(&k, "female") && f.is_present_id(&k, "lasting_days"));
        let f = Findings::of_topic(&k, ["my wife says I have a headache"]);
        assert!(!f.is_present_id(&k, "female"));
    }

    #[test]
    fn findings_accumulate_and_later_words_override() {
        let k = fixture();
        let turns = ["I have a headache", "and now a stiff neck"];
        let f = Findings::of_topic(&k, turns);
        assert!(f.is_present_id(&k, "headache") && f.is_present_id(&k, "neck_stiffness"));
        assert_eq!(
            mention(&k, &["I have a fever", "no, I don't have a fever"], "fever"),
            Mention::Denied
        );
        assert_eq!(
            mention(&k, &["no fever", "now I have a fever of 38.5"], "fever"),
            Mention::Present
        );
        assert_eq!(
            mention(&k, &["temp 39", "the temperature is 37.0 now"], "fever"),
            Mention::Denied
        );
    }
}
