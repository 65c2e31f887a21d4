//! Numbers in what people write: vital signs with their units, ages (infants in weeks and months),
//! sex, and how long symptoms have lasted. Patients write "sats 88", clinicians "SpO2 88% RA", Chinese
//! notes "血氧饱和度88%"; all of them mean the same measurement.

use std::sync::LazyLock;

use regex::Regex;

/// What could be measured from one text. `None` means "not stated", never "normal".
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Measurements {
    /// Highest temperature stated, °C.
    pub temperature_c: Option<f32>,
    /// Heart rate stated, beats/min (the highest when several are).
    pub heart_rate: Option<f32>,
    /// Lowest systolic blood pressure stated, mmHg, with its diastolic.
    pub systolic: Option<f32>,
    pub diastolic: Option<f32>,
    /// Highest respiratory rate stated, breaths/min.
    pub respiratory_rate: Option<f32>,
    /// Lowest oxygen saturation stated, %.
    pub spo2: Option<f32>,
    /// Blood glucose, mmol/L (mg/dL converted).
    pub glucose_mmol: Option<f32>,
    /// Age of the person described, years (an infant of 6 weeks is 0.115).
    pub age_years: Option<f32>,
    /// Longest duration of symptoms stated, days.
    pub duration_days: Option<f32>,
}

impl Measurements {
    /// Folds a later message's measurements over earlier ones: the newest stated value wins.
    pub fn overlay(&mut self, later: &Measurements) {
        macro_rules! take {
            ($($field:ident),*) => { $( if later.$field.is_some() { self.$field = later.$field; } )* };
        }
        take!(
            temperature_c,
            heart_rate,
            systolic,
            diastolic,
            respiratory_rate,
            spo2,
            glucose_mmol,
            age_years
        );
        self.duration_days = match (self.duration_days, later.duration_days) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

// Written for text that is NFKC-normalised and lower case.
const NUM: &str = r"(\d{1,3}(?:\.\d+)?)";

static TEMPERATURE_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"{NUM}\s*(?:°\s*c|°\s*f|℃|℉|度|degrees?\s*(?:c|f|celsius|fahrenheit)?|deg\s*[cf]?|c\b|f\b)"
    ))
});
static TEMPERATURE_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:\btemp(?:erature)?|\bt\b|\btmax|\bfebrile|\bfever(?:\s+of)?|\bpyrexia|体温|发烧|发热|烧到|高烧|低烧)\s*(?:of|is|was|up to|at|to|=|:)?\s*(?:about|around|over|above|约|达|到|至)?\s*{NUM}"
    ))
});
static HEART_RATE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:heart\s*rate|\bhr\b|\bpulse(?:\s*rate)?|\bp\b|心率|脉搏|心跳|脉率)\s*(?:of|is|was|at|=|:)?\s*(?:about|around|over|约)?\s*{NUM}"
    ))
});
static HEART_RATE_UNIT: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"{NUM}\s*(?:bpm|beats?\s*(?:a|per|/)\s*min)")));
static BLOOD_PRESSURE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(\d{2,3})\s*/\s*(\d{2,3})\s*(?:mm\s*hg|mmhg)?"));
static BLOOD_PRESSURE_CONTEXT: LazyLock<Regex> =
    LazyLock::new(|| re(r"blood\s*pressure|\bbp\b|\bnibp\b|mm\s*hg|血压|\bsbp\b"));
static SYSTOLIC_ALONE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:systolic|\bsbp\b|收缩压)\s*(?:of|is|was|=|:)?\s*{NUM}"
    ))
});
static RESPIRATORY_RATE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:resp(?:iratory|iration)?s?\s*rate|\brr\b|\bresps?\b|呼吸频率)\s*(?:of|is|was|at|=|:)?\s*{NUM}|(?:\br\b|呼吸)\s*[:=]?\s*{NUM}\s*(?:次|/\s*min|breaths)"
    ))
});
static RESPIRATORY_RATE_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"{NUM}\s*breaths?\s*(?:a|per|/)\s*min|breathing\s*(?:at|rate)?\s*{NUM}\s*(?:times|breaths)"
    ))
});
static SPO2: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:spo2|sp02|sao2|o2\s*sat(?:uration)?s?|\bsats?\b|saturations?|saturating|oxygen(?:\s*saturation|\s*level|\s*sat(?:uration)?s?)?|pulse\s*ox(?:imeter)?(?:\s*reading)?|ox(?:imeter)?\s*reading|血氧(?:饱和度)?|氧饱和度|指脉氧)(?:\s*(?:of|is|was|at|=|:|reads|reading|says|showed|shows|only|down to|dropped to|went down to|显示|只有|掉到|降到)){{0,3}}\s*(?:about|around|only|约)?\s*{NUM}\s*%?"
    ))
});
static GLUCOSE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:blood\s*sugar|blood\s*glucose|glucose|\bbgl?\b|\bbm\b|\bcbg\b|\bsugar(?:s)?(?:\s*level)?|glucometer|血糖仪[^\d]{{0,6}}|血糖[^\d仪]{{0,4}}|随机血糖|指尖血糖)\s*(?:level)?(?:\s*(?:of|is|was|at|=|:|reads|reading|says|shows|showed|on|my|the|测|测了|显示|是|高达|只有)){{0,3}}\s*(?:about|around|over|only|约)?\s*{NUM}\s*(mmol|mg)?"
    ))
});
static AGE_YEARS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d{1,3})\s*-?\s*(?:years?|yrs?)\s*-?\s*old|(\d{1,3})\s*(?:yo|y/o|y\.o\.)|(?:\baged?|\bage:?)\s*(\d{1,3})\b|(\d{1,3})\s*(?:周)?岁|(?:^|[\s,(，])(\d{1,3})\s*(?:m|f|男|女)\b",
    )
});
static AGE_INFANT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|[一二两三四五六七八九十]+)\s*-?\s*(weeks?|wks?|months?|mos?|周|个月|天|days?)\s*-?\s*(old|大|的宝宝|的婴儿|的孩子|宝宝|婴儿)",
    )
});
/// "宝宝10个月" is the baby's age, not how long something has lasted.
static CHILD_AGE_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:宝宝|宝贝|孩子|婴儿|儿子|女儿|娃|小孩|闺女)\s*(?:才|刚|刚满|满)?\s*(\d+|[一二两三四五六七八九十]+)\s*(个月|周|天)",
    )
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|few|several|couple of|[一二两三四五六七八九十几半]+)\s*(?:more\s*)?(days?|weeks?|months?|years?|hours?|hrs?|天|日|周|星期|个星期|个月|月|年|小时)",
    )
});

/// "three", "a", "两", "十二" or "12" as a number.
pub(crate) fn number_word(word: &str) -> Option<f32> {
    Some(match word {
        "a" | "an" | "one" | "一" => 1.0,
        "半" => 0.5,
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
        other => return other.parse().ok().or_else(|| chinese_number(other)),
    })
}

/// 十二, 二十, 二十五 and the like.
fn chinese_number(word: &str) -> Option<f32> {
    let digit = |c: char| {
        "零一二三四五六七八九"
            .chars()
            .position(|d| d == c)
            .or((c == '两').then_some(2))
    };
    let chars: Vec<char> = word.chars().collect();
    match chars.as_slice() {
        [c] => digit(*c).map(|d| d as f32),
        ['十', d] => digit(*d).map(|d| 10.0 + d as f32),
        [t, '十'] => digit(*t).map(|t| t as f32 * 10.0),
        [t, '十', d] => Some(digit(*t)? as f32 * 10.0 + digit(*d)? as f32),
        _ => None,
    }
}

fn number(m: Option<regex::Match<'_>>) -> Option<f32> {
    m?.as_str().parse().ok()
}

/// Temperatures are read in °C or °F, whichever fits the number.
fn as_celsius(value: f32, fahrenheit_unit: bool) -> Option<f32> {
    match value {
        v if (34.0..=43.5).contains(&v) && !fahrenheit_unit => Some(v),
        v if (93.0..=110.0).contains(&v) => Some((v - 32.0) * 5.0 / 9.0),
        _ => None,
    }
}

fn max(a: Option<f32>, b: f32) -> Option<f32> {
    Some(a.map_or(b, |a| a.max(b)))
}
fn min(a: Option<f32>, b: f32) -> Option<f32> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Measurements {
    /// Reads the measurements in one normalised (NFKC, lower-case) text.
    pub fn of(normalized: &str) -> Self {
        let text = normalized;
        let mut m = Measurements::default();

        for c in TEMPERATURE_UNIT.captures_iter(text) {
            let unit = c.get(0).map_or("", |m| m.as_str());
            let fahrenheit = unit.contains('f') || unit.contains('℉');
            // "38 c" is a temperature; "c" after a small number could be anything else, so the
            // value must also be in a plausible range, which as_celsius checks.
            if let Some(t) = number(c.get(1)).and_then(|v| as_celsius(v, fahrenheit)) {
                m.temperature_c = max(m.temperature_c, t);
            }
        }
        for c in TEMPERATURE_LABEL.captures_iter(text) {
            // A labelled reading can be a dangerously low one ("temperature 30.5").
            let low = number(c.get(1)).filter(|v| (25.0..34.0).contains(v));
            if let Some(t) = low.or_else(|| number(c.get(1)).and_then(|v| as_celsius(v, false))) {
                m.temperature_c = max(m.temperature_c, t);
            }
        }
        for c in HEART_RATE
            .captures_iter(text)
            .chain(HEART_RATE_UNIT.captures_iter(text))
        {
            if let Some(v) = number(c.get(1)).filter(|v| (20.0..=250.0).contains(v)) {
                m.heart_rate = max(m.heart_rate, v);
            }
        }
        if BLOOD_PRESSURE_CONTEXT.is_match(text) {
            for c in BLOOD_PRESSURE.captures_iter(text) {
                let (Some(s), Some(d)) = (number(c.get(1)), number(c.get(2))) else {
                    continue;
                };
                if (50.0..=260.0).contains(&s) && (20.0..=160.0).contains(&d) && d < s {
                    if m.systolic.is_none_or(|old| s < old) {
                        m.systolic = Some(s);
                        m.diastolic = Some(d);
                    } else if m.diastolic.is_some_and(|old| d > old) {
                        m.diastolic = Some(d);
                    }
                }
            }
        }
        for c in SYSTOLIC_ALONE.captures_iter(text) {
            if let Some(s) = number(c.get(1)).filter(|s| (40.0..=260.0).contains(s)) {
                m.systolic = min(m.systolic, s);
            }
        }
        for c in RESPIRATORY_RATE
            .captures_iter(text)
            .chain(RESPIRATORY_RATE_UNIT.captures_iter(text))
        {
            if let Some(v) =
                number(c.get(1).or_else(|| c.get(2))).filter(|v| (4.0..=80.0).contains(v))
            {
                m.respiratory_rate = max(m.respiratory_rate, v);
            }
        }
        for c in SPO2.captures_iter(text) {
            if let Some(v) = number(c.get(1)).filter(|v| (50.0..=100.0).contains(v)) {
                m.spo2 = min(m.spo2, v);
            }
        }
        for c in GLUCOSE.captures_iter(text) {
            let Some(v) = number(c.get(1)) else { continue };
            let mg = match c.get(2).map(|u| u.as_str()) {
                Some("mg") => true,
                Some(_) => false,
                // Without a unit: mmol/L readings stay under 35 in practice, mg/dL ones above it.
                None => v >= 35.0,
            };
            let mmol = if mg { v / 18.0 } else { v };
            if (0.5..=60.0).contains(&mmol) {
                // The most abnormal reading matters most; keep the one furthest from normal.
                let distance = |x: f32| if x < 5.5 { (5.5 - x) * 4.0 } else { x - 5.5 };
                if m.glucose_mmol
                    .is_none_or(|old| distance(mmol) > distance(old))
                {
                    m.glucose_mmol = Some(mmol);
                }
            }
        }
        for c in AGE_INFANT.captures_iter(text) {
            let Some(n) = number_word(&c[1]) else {
                continue;
            };
            let unit = &c[2];
            let years = if unit.starts_with('w') || unit == "周" {
                n * 7.0 / 365.0
            } else if unit.starts_with('d') || unit == "天" {
                n / 365.0
            } else {
                n / 12.0
            };
            m.age_years = min(m.age_years, years);
        }
        for c in CHILD_AGE_ZH.captures_iter(text) {
            let Some(n) = number_word(&c[1]) else {
                continue;
            };
            let years = match &c[2] {
                "周" => n * 7.0 / 365.0,
                "天" => n / 365.0,
                _ => n / 12.0,
            };
            m.age_years = min(m.age_years, years);
        }
        if m.age_years.is_none() {
            for c in AGE_YEARS.captures_iter(text) {
                let years = (1..=5).find_map(|i| number(c.get(i)));
                if let Some(y) = years.filter(|y| (0.0..=115.0).contains(y)) {
                    m.age_years = Some(y);
                    break;
                }
            }
        }
        for c in DURATION.captures_iter(text) {
            let Some(n) = number_word(c[1].trim()) else {
                continue;
            };
            let unit = &c[2];
            let days = if unit.starts_with('h') || unit == "小时" {
                1.0 / 24.0
            } else if unit.starts_with('d') || unit == "天" || unit == "日" {
                1.0
            } else if unit.starts_with('w') || unit.contains('周') || unit.contains("星期") {
                7.0
            } else if unit.starts_with('m') || unit.contains('月') {
                30.0
            } else {
                365.0
            };
            // An age ("a 3-year-old", "65 years old") is not a duration.
            let after = &text[c.get(0).map_or(0, |m| m.end())..];
            let after = after.trim_start_matches([' ', '-']);
            if after.starts_with("old") || after.starts_with('大') {
                continue;
            }
            // Nor is a pregnancy's length ("36 weeks pregnant", "孕32周", "32 weeks gestation"),
            // nor a baby's age written without "old" ("baby 7 months, red cheeks").
            let before_match = &text[..c.get(0).map_or(0, |m| m.start())];
            let said_of = before_match.trim_end();
            if ["baby", "babys", "son", "daughter", "infant", "boy", "girl"]
                .iter()
                .any(|w| said_of.ends_with(w))
            {
                continue;
            }
            if after.starts_with("pregnant")
                || after.starts_with("gestation")
                || after.starts_with("of pregnancy")
                || before_match.ends_with('孕')
                || before_match.ends_with("怀孕")
                || before_match.ends_with("孕期")
            {
                continue;
            }
            let before = &text[..c.get(0).map_or(0, |m| m.start())];
            if CHILD_AGE_ZH
                .find_iter(text)
                .any(|a| a.end() >= before.len() && a.start() <= before.len())
            {
                continue;
            }
            m.duration_days = max(m.duration_days, n * days);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Measurements {
        Measurements::of(&text.to_lowercase())
    }

    #[test]
    fn vital_signs_in_clinical_notes() {
        let m = of("T 38.9, HR 124, BP 84/52 mmHg, RR 28, SpO2 89% on room air");
        assert_eq!(m.temperature_c, Some(38.9));
        assert_eq!(m.heart_rate, Some(124.0));
        assert_eq!((m.systolic, m.diastolic), (Some(84.0), Some(52.0)));
        assert_eq!(m.respiratory_rate, Some(28.0));
        assert_eq!(m.spo2, Some(89.0));
    }

    #[test]
    fn vital_signs_in_patient_words() {
        let m = of("cough and fever, my oxygen saturation is 88%");
        assert_eq!(m.spo2, Some(88.0));
        let m = of("fever 39.5, heart rate 130, blood pressure 85/50");
        assert_eq!(
            (m.temperature_c, m.heart_rate, m.systolic),
            (Some(39.5), Some(130.0), Some(85.0))
        );
        let m = of("my blood sugar is 32 mmol/L and I feel very drowsy");
        assert_eq!(m.glucose_mmol, Some(32.0));
        let m = of("sugar reading says 450 mg/dl");
        assert_eq!(m.glucose_mmol, Some(25.0));
        let m = of("temp 102.2F and pulse ox says 91");
        assert!((m.temperature_c.unwrap() - 39.0).abs() < 0.01);
        assert_eq!(m.spo2, Some(91.0));
    }

    #[test]
    fn vital_signs_in_chinese() {
        let m = of("患者男，65岁，查体：T 38.9℃，P 120次/分，R 26次/分，BP 85/50mmHg，SpO2 89%");
        assert_eq!(m.age_years, Some(65.0));
        assert_eq!(m.temperature_c, Some(38.9));
        assert_eq!(m.heart_rate, Some(120.0));
        assert_eq!(m.respiratory_rate, Some(26.0));
        assert_eq!(m.systolic, Some(85.0));
        assert_eq!(m.spo2, Some(89.0));
        assert_eq!(of("家里血糖仪测了一下2.1").glucose_mmol, Some(2.1));
        let m = of("血氧88，血糖2.5，发烧三天了");
        assert_eq!(m.spo2, Some(88.0));
        assert_eq!(m.glucose_mmol, Some(2.5));
        assert_eq!(m.duration_days, Some(3.0));
    }

    #[test]
    fn ages_and_durations() {
        assert_eq!(of("a 65-year-old man presents with").age_years, Some(65.0));
        assert_eq!(of("34F, 2 days of dysuria").age_years, Some(34.0));
        assert!(of("my 6 week old baby").age_years.unwrap() < 0.2);
        assert!((of("宝宝三个月大").age_years.unwrap() - 0.25).abs() < 0.01);
        assert_eq!(
            of("my 3-year-old son has had diarrhoea for 2 days").duration_days,
            Some(2.0)
        );
        assert_eq!(of("coughing for three weeks").duration_days, Some(21.0));
        // A pregnancy's length is not how long a symptom has lasted.
        assert_eq!(
            of("36 weeks pregnant, hardly felt him move").duration_days,
            None
        );
        assert_eq!(of("孕32周，胎动少").duration_days, None);
        assert_eq!(of("baby 7 months red cheeks dribbling").duration_days, None);
        assert_eq!(of("a 3-year-old").duration_days, None);
    }

    #[test]
    fn later_values_replace_earlier_ones() {
        let mut m = of("temp 39");
        m.overlay(&of("now the temperature is 37.2"));
        assert_eq!(m.temperature_c, Some(37.2));
    }
}
