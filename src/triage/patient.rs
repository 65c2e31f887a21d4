//! Triage of what the patient wrote: deterministic red-flag rules in English and Simplified Chinese.
//! No model is involved, so the answer is immediate and the same every time. The rules lean towards
//! over-triage: a missed emergency costs a life, a false alarm costs a phone call.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{Phrases, Text};
use crate::domain::TriageLevel;

/// What triage found: the level, and the rules that set it (most serious first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Assessment {
    pub level: TriageLevel,
    pub reasons: Vec<&'static str>,
}

impl Assessment {
    pub fn is_emergency(&self) -> bool {
        self.level == TriageLevel::Emergency
    }
}

/// Facts found in one message.
struct Findings {
    text: Text,
    /// Highest temperature mentioned, in °C.
    temperature_c: Option<f32>,
    /// Age in months when a baby's age is given.
    infant_age_months: Option<f32>,
    /// Longest duration mentioned, in days.
    duration_days: Option<f32>,
}

macro_rules! phrases {
    ($name:ident, [$($p:expr),* $(,)?]) => {
        static $name: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[$($p),*]));
    };
}

phrases! {CHEST_PAIN, [
    "chest pain", "chest pains", "chest hurt*", "chest ache*", "pain ~ chest", "chest tight*",
    "tight* ~ chest", "pressure ~ chest", "chest pressure", "chest is killing", "heart pain",
    "heart hurts", "crushing ~ chest", "squeezing ~ chest", "chest feels heavy", "heavy chest",
    "胸痛", "胸~疼", "胸~痛", "胸闷", "胸口~压", "心口~疼", "心口~痛", "心脏~疼", "心脏~痛", "胸口~紧",
]}
phrases! {CARDIAC_DANGER, [
    "sweat*", "clammy", "cold sweat", "left arm", "arm ~ numb*", "to ~ arm", "jaw", "radiat*",
    "spread* ~ arm", "spread* ~ back", "crushing", "squeezing", "elephant", "nause*", "vomit*",
    "faint*", "dizzy", "heart attack", "出汗", "冷汗", "左臂", "左手臂", "胳膊", "下巴", "放射", "压榨",
    "恶心", "心梗", "心肌梗", "头晕",
    "大汗", "满头~汗", "一身~汗",
]}
phrases! {BREATHING_SEVERE, [
    "cant breathe", "cant breath", "cannot breathe", "cannot breath", "unable to breathe",
    "cant get ~ breath", "cant catch ~ breath", "struggling to breathe", "struggling ~ breath",
    "gasping", "choking", "lips ~ blue", "turning blue", "blue lips", "cant speak ~ breath",
    "not breathing", "stopped breathing", "cant breathe properly", "suffocat*",
    "喘不过气", "喘不上气", "呼吸不了", "不能呼吸", "无法呼吸", "窒息", "嘴唇发紫", "嘴唇发青",
    "上不来气", "透不过气", "没有呼吸", "停止呼吸",
]}
phrases! {BREATHING_DIFFICULTY, [
    "short* of breath", "shortness of breath", "breathless*", "hard to breathe",
    "difficulty breathing", "trouble breathing", "difficult to breathe", "wheez*",
    "breathing ~ hard", "breathing ~ difficult", "out of breath", "asthma attack",
    "呼吸困难", "气短", "气喘", "喘气~困难", "呼吸~急促", "哮喘发作",
]}
phrases! {ANAPHYLAXIS, [
    "anaphyla*", "throat ~ swell*", "throat ~ closing", "throat ~ tight*", "tongue ~ swell*",
    "swollen tongue", "swollen throat", "swelling ~ throat", "face ~ swell*", "lips ~ swell*",
    "swollen lips", "swollen face", "epipen", "epi pen",
    "过敏性休克", "喉咙~肿", "喉咙~紧", "嗓子~肿", "舌头~肿", "嘴唇~肿", "脸~肿",
]}
phrases! {ALLERGY, [
    "allerg*", "reaction to", "hives", "stung", "sting", "peanut*", "bee", "过敏", "荨麻疹", "蜜蜂", "花生",
]}
phrases! {STROKE, [
    "face ~ droop*", "drooping", "droopy", "one side ~ face", "slurred", "slurring",
    "slurr*", "cant speak", "cant talk", "cant get ~ words out", "words ~ jumbled",
    "weak* ~ one side", "numb* ~ one side", "one side ~ numb*", "one side ~ weak*",
    "cant move ~ arm", "cant move ~ leg", "cant lift ~ arm", "arm ~ went weak",
    "stroke", "sudden* ~ vision", "lost ~ vision", "cant see ~ eye", "blind ~ sudden*",
    "口齿不清", "说话不清", "说话含糊", "说不出话", "嘴歪", "口角歪", "半边~麻", "半边~无力",
    "一侧~无力", "一侧~麻", "一边~麻", "一边~没力", "中风", "脑卒中", "突然看不见", "突然失明",
]}
phrases! {BLEEDING_HEAVY, [
    "bleeding heavily", "heavy bleeding", "bleeding ~ wont stop", "wont stop bleeding",
    "cant stop ~ bleeding", "bleeding ~ not stopping", "lots of blood", "blood everywhere",
    "spurting", "soaked ~ blood", "soaking ~ pads", "pool of blood", "bleeding badly",
    "bleeding a lot", "vomit* blood", "throwing up blood", "threw up blood",
    "大出血", "血止不住", "止不住血", "流血不止", "出血不止", "血流不止", "流了很多血", "出了很多血",
    "很多血", "大量出血", "吐血", "呕血", "喷血",
]}
phrases! {BLEEDING, ["bleed*", "blood*", "spotting", "出血", "流血", "见红", "血"]}
phrases! {UNCONSCIOUS, [
    "unconscious", "passed out", "passing out", "fainted", "collapsed", "not waking",
    "wont wake", "cant wake", "unresponsive", "blacked out", "no pulse", "not responding",
    "knocked out", "lost consciousness",
    "昏迷", "晕倒", "昏倒", "失去意识", "叫不醒", "不省人事", "晕过去", "没有意识", "没反应", "休克",
]}
phrases! {SEIZURE, [
    "seizure*", "seizing", "convuls*", "fitting", "having a fit", "epileptic fit",
    "shaking uncontrollably", "jerking", "抽搐", "癫痫发作", "羊癫疯", "惊厥", "口吐白沫",
    "had a fit", "has had a fit", "having fits", "keeps fitting",
]}
phrases! {SUICIDE, [
    "kill myself", "killing myself", "suicid*", "end my life", "end it all", "want to die",
    "wanna die", "dont want to live", "dont want to be alive", "better off dead",
    "no reason to live", "hurt myself", "hurting myself", "harm myself", "self harm",
    "selfharm", "cutting myself", "cut myself on purpose", "take my own life", "not worth living",
    "自杀", "不想活", "想死", "轻生", "结束~生命", "割腕", "伤害自己", "自残", "活着没意思", "活不下去",
]}
phrases! {OVERDOSE, [
    "overdos*", "took too many", "taken too many", "too many pills", "whole bottle",
    "whole packet", "whole box", "swallowed ~ bleach", "drank ~ bleach", "drank bleach",
    "poison*", "swallowed ~ battery", "ate ~ pills", "swallowed ~ pills", "took ~ pills ~ all",
    "antifreeze", "pesticide", "weed killer", "carbon monoxide",
    "吃了很多药", "吃了一整瓶", "一整瓶", "一整盒", "吃多了药", "药~过量", "服药过量", "中毒",
    "误服", "误食", "农药", "吞了~药", "喝了~消毒", "吞了电池", "安眠药",
    "吃了~好多~药", "吃了~很多~药", "好多药", "吃了~一盒", "吃了~一瓶",
]}
phrases! {THUNDERCLAP, [
    "worst headache", "thunderclap", "worst ~ headache of my life", "head ~ explod*",
    "hit by ~ bat", "最厉害的头痛", "最严重的头痛", "头~要炸", "头~炸裂", "从来没有这么疼",
    "前所未有的头痛",
]}
phrases! {HEADACHE, [
    "headache*", "head hurts", "head ache*", "head is pounding", "migraine*", "head ~ pain",
    "pain ~ head", "头痛", "头疼", "偏头痛", "头~疼", "头~痛",
]}
phrases! {SUDDEN, [
    "sudden*", "all of a sudden", "out of nowhere", "came on ~ quickly", "came on ~ fast",
    "within seconds", "instantly", "突然", "一下子", "突发",
]}
phrases! {SEVERE, [
    "severe*", "very bad", "really bad", "so bad", "terrible", "worst", "excruciating",
    "unbearable", "intense*", "agony", "agonizing", "agonising", "crushing", "killing me",
    "10 out of 10", "10 10", "cant stand", "screaming", "doubled over", "sharp and constant",
    "剧烈", "厉害", "受不了", "剧痛", "很严重", "特别疼", "特别痛", "非常疼", "非常痛", "疼死", "痛死",
    "疼得要命", "痛得要命", "难以忍受", "忍不了", "打滚",
]}
phrases! {PAIN, ["pain*", "hurt*", "ache*", "aching", "cramp*", "疼", "痛",
    "toothache*", "tooth ache*", "backache*", "earache*", "bellyache*", "stomachache*", "牙疼", "牙痛",
]}
phrases! {FEVER, [
    "fever*", "feverish", "temperature", "high temp", "temp of", "burning up", "febrile",
    "发烧", "发热", "高烧", "低烧", "体温", "烧到",
]}
phrases! {HIGH_FEVER_WORDS, ["high fever", "very high temperature", "burning up", "高烧", "高热"]}
phrases! {INFANT, [
    "baby", "babys", "infant*", "newborn*", "new born", "neonat*", "month old", "months old",
    "week old", "weeks old", "婴儿", "宝宝", "新生儿", "个月大", "刚出生", "小婴儿",
]}
phrases! {NEWBORN, ["newborn*", "new born", "neonat*", "week old", "weeks old", "新生儿", "刚出生"]}
phrases! {PREGNANT, [
    "pregnan*", "expecting a baby", "weeks pregnant", "my bump", "怀孕", "孕妇", "孕期", "怀了", "有孕",
    "孕~周", "孕早期", "孕晚期",
    "waters ~ broke", "waters ~ broken", "waters have gone", "羊水破", "破水",
]}
phrases! {ABDOMINAL_PAIN, [
    "stomach pain", "abdominal pain", "belly pain", "tummy pain", "stomach hurts",
    "stomach ache", "stomachache", "stomach cramp*", "tummy ache", "belly hurts",
    "pain ~ stomach", "pain ~ abdomen", "pain ~ belly", "pain ~ tummy", "abdomen ~ hurts",
    "stomach ~ killing", "lower right ~ pain", "appendix", "appendicitis",
    "肚子~疼", "肚子~痛", "腹痛", "腹部~痛", "腹部~疼", "胃疼", "胃痛", "小腹~疼", "小腹~痛", "阑尾",
    "pain ~ lower ~ belly", "pain ~ lower ~ abdomen", "pain ~ lower ~ stomach", "pain ~ lower ~ tummy", "pain ~ right ~ belly", "pain ~ right ~ abdomen", "pain ~ side ~ belly",
]}
phrases! {STIFF_NECK, [
    "stiff neck", "neck ~ stiff", "cant bend ~ neck", "cant touch ~ chin ~ chest", "neck ~ rigid",
    "脖子~僵硬", "脖子~硬", "颈部~僵硬", "颈~僵", "脖子~不能弯", "脖子~动不了",
]}
phrases! {NONBLANCHING_RASH, [
    "rash ~ not fade", "rash ~ doesnt fade", "rash ~ wont fade", "rash ~ glass",
    "glass test", "purple spots", "purple rash", "non blanching", "nonblanching",
    "pinprick ~ spots", "皮疹~不褪色", "压~不褪色", "紫色~斑", "紫斑", "出血点",
]}
phrases! {PHOTOPHOBIA, [
    "light hurts ~ eyes", "hurts to look at ~ light", "sensitive to light", "cant stand ~ light",
    "怕光", "畏光",
]}
phrases! {BLOOD_IN_OUTPUT, [
    "blood ~ urine", "blood ~ pee", "blood ~ stool", "blood ~ poo*", "bloody stool*",
    "black stool*", "black poo*", "tarry", "peeing blood", "pooping blood", "coughing ~ blood",
    "cough* up blood", "blood ~ phlegm", "blood ~ sputum",
    "尿血", "血尿", "便血", "大便~血", "黑便", "咳血", "咯血", "痰~血",
    "小便~血", "尿~血", "大便~黑", "拉~黑", "便~发黑",
]}
phrases! {VOMITING_PERSISTENT, [
    "cant keep ~ down", "cannot keep ~ down", "vomiting ~ all day", "throwing up ~ all day",
    "keep vomiting", "keep throwing up", "vomiting ~ hours", "throwing up ~ hours",
    "吃什么吐什么", "一直吐", "吐了~一天", "喝水都吐", "不停地吐", "吐个不停",
]}
phrases! {DEHYDRATION, [
    "not peed", "havent peed", "no wet nappies", "no wet diapers", "very dry mouth",
    "no urine", "没有尿", "尿很少", "几乎不尿",
    "hasnt peed", "not weed", "hasnt weed", "no wees",
]}
phrases! {HEAD_INJURY, [
    "hit ~ head", "bumped ~ head", "banged ~ head", "head injury", "fell ~ on ~ head",
    "concussion", "撞到头", "摔到头", "头部~受伤", "头~撞", "脑震荡",
    "knocked ~ head", "smacked ~ head", "whacked ~ head",
]}
phrases! {CONFUSION, [
    "confused", "confusion", "disoriented", "not making sense", "doesnt know where",
    "神志不清", "意识模糊", "糊涂", "胡言乱语", "认不出",
]}
phrases! {PREGNANCY_WARNING, [
    "baby ~ not moving", "baby ~ moving less", "less movement", "reduced movement*",
    "water* ~ broke", "waters ~ broken", "contractions", "swelling ~ face", "blurred vision",
    "胎动~少", "胎动~减少", "没有胎动", "羊水破", "破水", "宫缩", "视力模糊",
]}
phrases! {LUMP, ["lump*", "mass in", "growth on", "swelling in ~ breast", "肿块", "包块", "硬块", "结节"]}
phrases! {WEIGHT_LOSS, [
    "lost ~ weight", "losing weight", "weight loss", "weight dropping", "体重~下降", "体重~减轻",
    "瘦了很多", "消瘦",
]}
phrases! {ROUTINE_SYMPTOMS, [
    "rash", "joint pain", "joints ~ hurt", "back pain", "back hurts", "burn* ~ pee", "burn* ~ urinat*",
    "pain* ~ pee*", "uti", "urinary", "peeing ~ often", "depress*", "anxi*", "panic attack*",
    "cant sleep", "insomnia", "blood pressure", "blood sugar", "diabet*", "period* ~ late",
    "irregular period*", "missed ~ period", "heavy periods", "ear ~ pain", "earache", "ear hurts",
    "dizz*", "vertigo", "numbness", "tingling", "heartburn", "acid reflux", "reflux",
    "palpitation*", "heart racing", "racing heart", "knee", "shoulder pain", "eczema", "acne",
    "discharge", "itchy ~ down there", "erectile", "mole", "swollen ankles", "stomach upset",
    "皮疹", "湿疹", "关节~疼", "关节~痛", "腰疼", "腰痛", "背疼", "背痛", "尿频", "尿急", "尿痛",
    "小便~疼", "小便~痛", "抑郁", "焦虑", "失眠", "睡不着", "血压", "血糖", "糖尿病", "月经~不调",
    "月经~推迟", "月经~没来", "耳朵~疼", "耳朵~痛", "头晕", "眩晕", "麻木", "心慌", "心悸", "胃酸",
    "反酸", "膝盖", "痣", "白带", "脚踝~肿",
    "ear ache*",
    "painful period*", "period pain*", "ankles ~ swollen", "swelling ~ ankles", "legs ~ swollen", "痛经",
]}

static TEMPERATURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{2,3}(?:\.\d+)?)\s*(°\s*[cf]?|℃|℉|度|degrees?(?:\s*[cf])?|[cf]\b)?")
        .expect("valid regex")
});
static AGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|[一二两三四五六七八九十]+)\s*-?\s*(weeks?|wks?|months?|mos?|周|个月|天|days?)\s*-?\s*(old|大)?")
        .expect("valid regex")
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|few|several|couple of|[一二两三四五六七八九十几]+)\s*(?:more\s*)?(days?|weeks?|months?|years?|天|周|星期|个星期|个月|年)")
        .expect("valid regex")
});
phrases! {LONG_LASTING, ["for weeks",
"for months",
"for ages",
"for a long time",
"chronic*",
"keeps coming back",
"every day for",
"好几周",
"好几个月",
"很久",
"一直都",
"长期",
"反复"]}
phrases! {TEMPERATURE_CONTEXT, ["fever*", "temp*", "thermometer", "发烧", "发热", "体温", "烧"]}

fn number_word(word: &str) -> Option<f32> {
    let simple = match word {
        "a" | "one" | "一" => 1.0,
        "two" | "couple of" | "二" | "两" => 2.0,
        "three" | "few" | "三" | "几" => 3.0,
        "four" | "四" => 4.0,
        "five" | "several" | "五" => 5.0,
        "six" | "六" => 6.0,
        "seven" | "七" => 7.0,
        "eight" | "八" => 8.0,
        "nine" | "九" => 9.0,
        "ten" | "十" => 10.0,
        "eleven" => 11.0,
        other => return other.parse().ok(),
    };
    Some(simple)
}

impl Findings {
    fn of(message: &str) -> Self {
        let text = Text::new(message);
        let has_temperature_context = TEMPERATURE_CONTEXT.found_in(&text);
        let mentions_baby = INFANT.found_in(&text);
        let temperature_c = TEMPERATURE
            .captures_iter(&text.normalized)
            .filter_map(|c| {
                let value: f32 = c[1].parse().ok()?;
                let unit = c.get(2).map(|m| m.as_str());
                if unit.is_none() && !has_temperature_context {
                    return None;
                }
                let fahrenheit = unit.is_some_and(|u| u.contains('f') || u.contains('℉'));
                match value {
                    v if (35.0..=43.5).contains(&v) && !fahrenheit => Some(v),
                    v if (95.0..=110.0).contains(&v) => Some((v - 32.0) * 5.0 / 9.0),
                    _ => None,
                }
            })
            .reduce(f32::max);
        let infant_age_months = AGE
            .captures_iter(&text.normalized)
            // "两个月" alone is a duration ("coughing for two months") unless a baby is mentioned.
            .filter(|c| {
                c.get(3).is_some() || (mentions_baby && c[2].chars().any(super::text::is_han))
            })
            .filter_map(|c| {
                let n = number_word(&c[1])?;
                let unit = &c[2];
                Some(if unit.starts_with('w') || unit == "周" {
                    n / 4.3
                } else if unit.starts_with('d') || unit == "天" {
                    n / 30.0
                } else {
                    n
                })
            })
            .reduce(f32::min);
        let duration_days = DURATION
            .captures_iter(&text.normalized)
            .filter_map(|c| {
                let n = number_word(c[1].trim())?;
                let unit = &c[2];
                let days = if unit.starts_with('d') || unit == "天" {
                    1.0
                } else if unit.starts_with('w') || unit.contains('周') || unit.contains("星期") {
                    7.0
                } else if unit.starts_with('m') || unit.contains('月') {
                    30.0
                } else {
                    365.0
                };
                Some(n * days)
            })
            .reduce(f32::max)
            .or_else(|| LONG_LASTING.found_in(&text).then_some(30.0));
        Self {
            text,
            temperature_c,
            infant_age_months,
            duration_days,
        }
    }

    fn has(&self, phrases: &Phrases) -> bool {
        phrases.found_in(&self.text)
    }
}

/// Assesses one message from a patient.
pub fn assess(message: &str) -> Assessment {
    let f = Findings::of(message);
    let mut found: Vec<(TriageLevel, &'static str)> = Vec::new();
    let mut rule = |level, reason, fired: bool| {
        if fired {
            found.push((level, reason));
        }
    };
    use TriageLevel::{Emergency, Routine, SelfCare, Urgent};

    let chest_pain = f.has(&CHEST_PAIN);
    let severe = f.has(&SEVERE);
    let breathing_severe = f.has(&BREATHING_SEVERE);
    let breathing_difficulty = f.has(&BREATHING_DIFFICULTY);
    let fever = f.has(&FEVER) || f.temperature_c.is_some_and(|t| t >= 38.0);
    let high_fever = f.has(&HIGH_FEVER_WORDS) || f.temperature_c.is_some_and(|t| t >= 39.0);
    let infant = f.has(&INFANT) || f.infant_age_months.is_some_and(|m| m < 12.0);
    let young_infant = f.has(&NEWBORN) || f.infant_age_months.is_some_and(|m| m < 3.0);
    let pregnant = f.has(&PREGNANT);
    let pain = f.has(&PAIN);
    let headache = f.has(&HEADACHE);
    let abdominal_pain = f.has(&ABDOMINAL_PAIN);
    let stiff_neck = f.has(&STIFF_NECK);
    let long_lasting = f.duration_days.is_some_and(|d| d >= 14.0);

    rule(
        Emergency,
        "chest_pain_with_danger_signs",
        chest_pain
            && (f.has(&CARDIAC_DANGER) || breathing_severe || breathing_difficulty || severe),
    );
    rule(Emergency, "stroke_signs", f.has(&STROKE));
    rule(
        Emergency,
        "severe_breathing_difficulty",
        breathing_severe || (breathing_difficulty && severe),
    );
    rule(
        Emergency,
        "anaphylaxis",
        f.has(&ANAPHYLAXIS) || (f.has(&ALLERGY) && (breathing_severe || breathing_difficulty)),
    );
    rule(Emergency, "heavy_bleeding", f.has(&BLEEDING_HEAVY));
    rule(Emergency, "loss_of_consciousness", f.has(&UNCONSCIOUS));
    rule(Emergency, "seizure", f.has(&SEIZURE));
    rule(Emergency, "suicidal_thoughts_or_self_harm", f.has(&SUICIDE));
    rule(Emergency, "overdose_or_poisoning", f.has(&OVERDOSE));
    rule(
        Emergency,
        "sudden_severe_headache",
        f.has(&THUNDERCLAP) || (headache && f.has(&SUDDEN) && severe),
    );
    rule(
        Emergency,
        "fever_in_infant",
        fever && infant && (young_infant || high_fever),
    );
    rule(
        Emergency,
        "pregnancy_bleeding_or_severe_pain",
        pregnant && (f.has(&BLEEDING) || (severe && (pain || abdominal_pain))),
    );
    rule(Emergency, "severe_abdominal_pain", abdominal_pain && severe);
    rule(
        Emergency,
        "meningitis_signs",
        (fever && stiff_neck)
            || f.has(&NONBLANCHING_RASH)
            || (stiff_neck && headache && f.has(&PHOTOPHOBIA)),
    );

    rule(Urgent, "chest_pain", chest_pain);
    rule(Urgent, "breathing_difficulty", breathing_difficulty);
    rule(Urgent, "high_fever", high_fever);
    rule(
        Urgent,
        "fever_lasting_days",
        fever && f.duration_days.is_some_and(|d| d >= 3.0),
    );
    rule(Urgent, "fever_in_infant", fever && infant);
    rule(
        Urgent,
        "blood_in_urine_stool_or_sputum",
        f.has(&BLOOD_IN_OUTPUT),
    );
    rule(
        Urgent,
        "persistent_vomiting_or_dehydration",
        f.has(&VOMITING_PERSISTENT) || f.has(&DEHYDRATION),
    );
    rule(Urgent, "head_injury", f.has(&HEAD_INJURY));
    rule(Urgent, "confusion", f.has(&CONFUSION));
    rule(
        Urgent,
        "pregnancy_warning_signs",
        pregnant && f.has(&PREGNANCY_WARNING),
    );
    rule(
        Urgent,
        "severe_pain",
        severe && (pain || headache || abdominal_pain),
    );
    rule(Urgent, "stiff_neck", stiff_neck);

    rule(Routine, "symptoms_lasting_weeks", long_lasting);
    rule(Routine, "lump_or_swelling", f.has(&LUMP));
    rule(Routine, "weight_loss", f.has(&WEIGHT_LOSS));
    rule(Routine, "abdominal_pain", abdominal_pain);
    rule(Routine, "pregnancy_question", pregnant);
    rule(
        Routine,
        "symptom_needing_assessment",
        f.has(&ROUTINE_SYMPTOMS),
    );

    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.dedup_by(|a, b| a.1 == b.1);
    let level = found.first().map_or(SelfCare, |(level, _)| *level);
    let mut reasons: Vec<&'static str> = found
        .iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, reason)| *reason)
        .collect();
    if reasons.is_empty() {
        reasons.push("no_warning_signs_found");
    }
    Assessment { level, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergencies_in_both_languages() {
        for text in [
            "I have crushing chest pain and my left arm is numb",
            "cant breath",
            "胸口疼得厉害，出冷汗",
            "my dad's face is drooping and his speech is slurred",
            "我想自杀",
            "my 6 week old baby has a fever of 38.2",
            "宝宝两个月大，发烧38.5度",
        ] {
            assert_eq!(assess(text).level, TriageLevel::Emergency, "{text}");
        }
    }

    #[test]
    fn negated_red_flags_do_not_fire() {
        let a = assess("No chest pain, no shortness of breath, just a runny nose");
        assert_eq!(a.level, TriageLevel::SelfCare, "{a:?}");
        assert_eq!(
            assess("没有胸痛，也没有发烧，就是有点咳嗽").level,
            TriageLevel::SelfCare
        );
    }

    #[test]
    fn numbers_are_read() {
        let f = Findings::of("my baby is 7 weeks old, temp 101.5F");
        assert!(f.infant_age_months.unwrap() < 2.0);
        assert!((f.temperature_c.unwrap() - 38.6).abs() < 0.1);
        let f = Findings::of("coughing for three weeks");
        assert_eq!(f.duration_days, Some(21.0));
    }

    #[test]
    fn reasons_name_the_rules_at_the_final_level() {
        let a = assess("severe stomach pain and I am 20 weeks pregnant");
        assert_eq!(a.level, TriageLevel::Emergency);
        assert!(a.reasons.contains(&"pregnancy_bleeding_or_severe_pain"));
        assert!(a.reasons.contains(&"severe_abdominal_pain"));
        assert_eq!(
            assess("what is vitamin D for?").reasons,
            ["no_warning_signs_found"]
        );
    }
}
