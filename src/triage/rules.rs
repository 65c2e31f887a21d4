//! The codes of the red-flag rules. One enum, so that every rule has its emergency advice and its
//! name checked by the compiler (`consult::wording` matches on it exhaustively).

macro_rules! red_flags {
    ($($variant:ident => $code:literal),* $(,)?) => {
        /// A red-flag rule of triage.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RedFlag { $($variant),* }

        impl RedFlag {
            pub const ALL: &'static [RedFlag] = &[$(RedFlag::$variant),*];

            /// The stable code shown to doctors and in `medbot triage`.
            pub fn as_str(self) -> &'static str {
                match self { $(RedFlag::$variant => $code),* }
            }
        }
    };
}

red_flags! {
    ChestPainWithDangerSigns => "chest_pain_with_danger_signs",
    StrokeSigns => "stroke_signs",
    SevereBreathingDifficulty => "severe_breathing_difficulty",
    Anaphylaxis => "anaphylaxis",
    HeavyBleeding => "heavy_bleeding",
    LossOfConsciousness => "loss_of_consciousness",
    Seizure => "seizure",
    SuicidalThoughtsOrSelfHarm => "suicidal_thoughts_or_self_harm",
    OverdoseOrPoisoning => "overdose_or_poisoning",
    SuddenSevereHeadache => "sudden_severe_headache",
    FeverInInfant => "fever_in_infant",
    PregnancyBleedingOrSeverePain => "pregnancy_bleeding_or_severe_pain",
    SevereAbdominalPain => "severe_abdominal_pain",
    MeningitisSigns => "meningitis_signs",
    AcuteLimbIschaemia => "cold_pale_limb",
    CaudaEquinaSigns => "cauda_equina_signs",
    Hypoxia => "low_oxygen_level",
    ShockSigns => "low_blood_pressure",
    VeryFastHeartRate => "very_fast_heart_rate",
    VerySlowHeartRate => "very_slow_heart_rate",
    VeryFastBreathing => "very_fast_breathing",
    SepsisSigns => "sepsis_signs",
    SevereHypoglycaemia => "low_blood_sugar_with_danger_signs",
    HyperglycaemicCrisis => "high_blood_sugar_with_danger_signs",
    HypertensiveEmergency => "very_high_blood_pressure_with_symptoms",
    SevereHypothermia => "very_low_body_temperature",
    SeverePreEclampsiaSigns => "high_blood_pressure_in_pregnancy",
    ChestPain => "chest_pain",
    BreathingDifficulty => "breathing_difficulty",
    HighFever => "high_fever",
    FeverLastingDays => "fever_lasting_days",
    BloodInUrineStoolOrSputum => "blood_in_urine_stool_or_sputum",
    PersistentVomitingOrDehydration => "persistent_vomiting_or_dehydration",
    HeadInjury => "head_injury",
    Confusion => "confusion",
    Fainted => "fainted",
    PregnancyWarningSigns => "pregnancy_warning_signs",
    SeverePain => "severe_pain",
    StiffNeck => "stiff_neck",
    LowOxygenSaturation => "borderline_oxygen_level",
    FastHeartRate => "fast_heart_rate",
    FastBreathing => "fast_breathing",
    LowBloodSugar => "low_blood_sugar",
    HighBloodSugar => "very_high_blood_sugar",
    VeryHighBloodPressure => "very_high_blood_pressure",
    LowBodyTemperature => "low_body_temperature",
    SymptomsLastingWeeks => "symptoms_lasting_weeks",
    LumpOrSwelling => "lump_or_swelling",
    WeightLoss => "weight_loss",
    AbdominalPain => "abdominal_pain",
    PregnancyQuestion => "pregnancy_question",
    SymptomNeedingAssessment => "symptom_needing_assessment",
}

impl std::fmt::Display for RedFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
