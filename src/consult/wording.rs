//! The fixed texts medbot sends without the model: emergency advice, review notices, the outcome
//! of a doctor's decision, and the fallback when no doctor answered in time. English and
//! Simplified Chinese. These are safety texts: change them with a clinician.

use crate::domain::{Language, TriageLevel};
use crate::triage::{Assessment, Reason, RedFlag};

/// What to do while help is on the way, by the triage rule that fired.
/// Every rule is listed, so a new rule cannot ship without a decision about its advice.
fn meanwhile(flag: RedFlag, language: Language) -> Option<&'static str> {
    use RedFlag as F;
    let zh = language == Language::Chinese;
    Some(match (flag, zh) {
        (F::ChestPainWithDangerSigns, false) => {
            "Stop what you are doing and sit down. Do not drive yourself. If you are not allergic to aspirin and a doctor has not told you to avoid it, the emergency operator may tell you to chew one."
        }
        (F::ChestPainWithDangerSigns, true) => {
            "立即停止活动，坐下休息。不要自己开车去医院。是否服用阿司匹林请听从急救调度员的指导。"
        }
        (F::StrokeSigns, false) => {
            "Note the time the symptoms started: doctors need it. Do not eat or drink anything. Lie on your side if you feel sick or drowsy."
        }
        (F::StrokeSigns, true) => {
            "记下症状开始的时间，医生需要这个信息。不要吃喝任何东西。如果恶心或嗜睡，请侧卧。"
        }
        (F::SevereBreathingDifficulty, false) => {
            "Sit upright and loosen tight clothing. If you have a reliever inhaler, use it as you were shown."
        }
        (F::SevereBreathingDifficulty, true) => {
            "保持坐直，解开过紧的衣物。如有急救吸入剂，按医嘱使用。"
        }
        (F::Anaphylaxis, false) => {
            "If you have an adrenaline (epinephrine) auto-injector, use it now in the outer thigh. Lie down with your legs raised, or sit up if breathing is hard. A second injection may be needed after 5 minutes."
        }
        (F::Anaphylaxis, true) => {
            "如有肾上腺素自动注射笔，立即注射于大腿外侧。平躺并抬高双腿；呼吸困难时可坐起。5分钟后可能需要第二针。"
        }
        (F::HeavyBleeding, false) => {
            "Press firmly on the wound with a clean cloth and do not let go. Keep pressing; add more cloth on top if blood soaks through. Raise the injured part if you can."
        }
        (F::HeavyBleeding, true) => {
            "用干净的布用力按压伤口，不要松开。血渗透时在上面加布继续按压。尽量抬高受伤部位。"
        }
        (F::LossOfConsciousness, false) => {
            "If the person is unresponsive but breathing, turn them on their side. If they are not breathing normally, start chest compressions and follow the operator's instructions."
        }
        (F::LossOfConsciousness, true) => {
            "如果患者没有反应但有呼吸，让其侧卧。如果没有正常呼吸，立即开始胸外按压，并听从调度员指导。"
        }
        (F::Seizure, false) => {
            "Move hard objects away and cushion the head. Do not hold the person down and put nothing in their mouth. When the jerking stops, turn them on their side."
        }
        (F::Seizure, true) => {
            "移开周围的硬物，垫住头部。不要按住患者，也不要往嘴里塞任何东西。抽搐停止后让其侧卧。"
        }
        (F::SuicidalThoughtsOrSelfHarm, false) => {
            "You do not have to go through this alone. If you can, stay with someone you trust and move away from anything you could use to hurt yourself. You can also call or text a crisis line now (988 in the US and Canada, 116 123 Samaritans in the UK and Ireland)."
        }
        (F::SuicidalThoughtsOrSelfHarm, true) => {
            "你不必独自面对。如果可以，请和你信任的人待在一起，远离可能伤害自己的物品。也可以现在拨打心理援助热线（全国心理援助热线 400-161-9995，北京心理危机干预中心 010-82951332）。"
        }
        (F::OverdoseOrPoisoning, false) => {
            "Do not make yourself sick. Keep the packaging or the substance to show the paramedics. If the person is drowsy, stay with them and lay them on their side."
        }
        (F::OverdoseOrPoisoning, true) => {
            "不要催吐。保留药品包装或可疑物质交给急救人员。如果患者嗜睡，请陪在身边并让其侧卧。"
        }
        (F::FeverInInfant, false) => {
            "Keep the baby lightly dressed and keep offering feeds. Do not give any medicine unless a clinician tells you to."
        }
        (F::FeverInInfant, true) => "给宝宝穿轻薄的衣服，继续喂奶。未经医生指导不要给任何药物。",
        (F::PregnancyBleedingOrSeverePain, false) => {
            "Lie down on your left side and keep any pads you have used to show the staff."
        }
        (F::PregnancyBleedingOrSeverePain, true) => "左侧卧休息，保留用过的卫生巾给医护人员查看。",
        (F::MeningitisSigns, false) | (F::SuddenSevereHeadache, false) => {
            "Do not wait for a rash to appear or for the symptoms to get worse. Stay with someone until help arrives."
        }
        (F::MeningitisSigns, true) | (F::SuddenSevereHeadache, true) => {
            "不要等待皮疹出现或症状加重。在救援到达前请有人陪伴。"
        }
        (F::SevereAbdominalPain, false) => {
            "Do not eat or drink until you have been seen, and do not take painkillers that might hide the pain."
        }
        (F::SevereAbdominalPain, true) => "就诊前不要进食饮水，也不要服用可能掩盖疼痛的止痛药。",
        (F::Hypoxia | F::VeryFastBreathing, false) => {
            "Sit upright and stay as calm and still as you can. If you have been prescribed oxygen or a reliever inhaler, use it as you were shown."
        }
        (F::Hypoxia | F::VeryFastBreathing, true) => {
            "保持坐直，尽量安静、少活动。如医生给您开过家用氧气或急救吸入剂，请按医嘱使用。"
        }
        (F::ShockSigns | F::SepsisSigns | F::VeryFastHeartRate | F::VerySlowHeartRate, false) => {
            "Lie down, with your legs raised if you feel faint. Do not eat or drink, and do not stay alone: ask someone to be with you until help arrives."
        }
        (F::ShockSigns | F::SepsisSigns | F::VeryFastHeartRate | F::VerySlowHeartRate, true) => {
            "平躺，如感觉要晕倒请抬高双腿。不要进食饮水，不要独处，请人陪伴直到救援到达。"
        }
        (F::SevereHypoglycaemia, false) => {
            "If the person is awake and can swallow safely, give a sugary drink, glucose tablets or sweets now. If they are drowsy or cannot swallow, give nothing by mouth and lay them on their side."
        }
        (F::SevereHypoglycaemia, true) => {
            "如果患者清醒且能安全吞咽，立即给含糖饮料、葡萄糖片或糖果。如果嗜睡或不能吞咽，不要喂任何东西，让其侧卧。"
        }
        (F::HyperglycaemicCrisis, false) => {
            "Take sips of water if you can keep them down. Bring your blood glucose meter and your medicines, and do not stop your insulin."
        }
        (F::HyperglycaemicCrisis, true) => {
            "能喝得下的话小口喝水。带上血糖仪和正在使用的药物，不要自行停用胰岛素。"
        }
        (F::HypertensiveEmergency, false) => {
            "Sit or lie down and rest. Do not take extra blood pressure tablets on your own: bring the ones you use."
        }
        (F::HypertensiveEmergency, true) => {
            "坐下或躺下休息。不要自行加服降压药，请带上正在服用的药物。"
        }
        (F::SeverePreEclampsiaSigns, false) => {
            "Lie on your left side and bring your maternity notes. Tell the staff how many weeks pregnant you are."
        }
        (F::SeverePreEclampsiaSigns, true) => {
            "左侧卧休息，带上孕检资料，并告诉医护人员您怀孕几周了。"
        }
        (F::CaudaEquinaSigns, false) => {
            "Go to an emergency department now, even if the pain is bearable: these nerve signs need a scan within hours. Do not wait to see if they pass."
        }
        (F::CaudaEquinaSigns, true) => {
            "即使疼痛还能忍受，也请立即去急诊：这些神经症状需要在几小时内做检查。不要等待观察。"
        }
        (F::AcuteLimbIschaemia, false) => {
            "Keep the limb still and at or slightly below the level of the heart, and keep it at room temperature: do not warm it, cool it or raise it."
        }
        (F::AcuteLimbIschaemia, true) => {
            "让患肢保持不动，放在与心脏齐平或略低的位置，保持室温：不要加热、冷敷或抬高。"
        }
        (F::SevereHypothermia, false) => {
            "Move the person somewhere warm, remove wet clothing and cover them with blankets, including the head. Handle them gently and do not rub the skin or put them in a hot bath."
        }
        (F::SevereHypothermia, true) => {
            "把患者移到温暖的地方，脱掉湿衣服，用毯子包裹全身（包括头部）。动作要轻柔，不要搓揉皮肤，也不要泡热水澡。"
        }
        (
            F::ChestPain
            | F::BreathingDifficulty
            | F::HighFever
            | F::FeverLastingDays
            | F::BloodInUrineStoolOrSputum
            | F::PersistentVomitingOrDehydration
            | F::HeadInjury
            | F::Confusion
            | F::Fainted
            | F::PregnancyWarningSigns
            | F::SeverePain
            | F::StiffNeck
            | F::LowOxygenSaturation
            | F::FastHeartRate
            | F::FastBreathing
            | F::LowBloodSugar
            | F::HighBloodSugar
            | F::VeryHighBloodPressure
            | F::LowBodyTemperature
            | F::SymptomsLastingWeeks
            | F::LumpOrSwelling
            | F::WeightLoss
            | F::AbdominalPain
            | F::PregnancyQuestion
            | F::SymptomNeedingAssessment,
            _,
        ) => return None,
    })
}

/// The advice sent at once for an emergency, before and instead of any model answer.
pub fn emergency_advice(language: Language, assessment: &Assessment) -> String {
    let mut text = match language {
        Language::English => String::from(
            "⚠️ This may be an emergency. Call your local emergency number now \
             (112 in Europe, 911 in the US and Canada, 999 in the UK, 120 in mainland China), \
             or go to the nearest emergency department. Do not wait for an answer from this chat.",
        ),
        Language::Chinese => String::from(
            "⚠️ 这可能是紧急情况。请立即拨打急救电话（中国大陆 120，香港 999，台湾 119，其他地区请拨当地急救号码），\
             或尽快前往最近的急诊室。不要等待本聊天的回复。",
        ),
    };
    let mut seen = Vec::new();
    let from_rules = assessment
        .red_flags()
        .filter_map(|f| meanwhile(f, language));
    // A likely condition's own vetted "what to do now" when no rule has advice of its own.
    let index = usize::from(language == Language::Chinese);
    let from_conditions = assessment.reasons.iter().filter_map(|r| match r {
        Reason::Condition(id) => assessment
            .conditions
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.now[index].as_str()),
        _ => None,
    });
    // A rule's advice is written for the moment; a condition's "now" text only stands in when no
    // rule has any, and one is enough.
    let from_rules: Vec<&str> = from_rules.collect();
    let from_conditions: Vec<&str> = if from_rules.is_empty() {
        from_conditions.take(1).collect()
    } else {
        Vec::new()
    };
    for advice in from_rules.into_iter().chain(from_conditions) {
        if !seen.contains(&advice) {
            seen.push(advice);
        }
    }
    if !seen.is_empty() {
        text.push_str(match language {
            Language::English => "\n\nWhile you wait for help:",
            Language::Chinese => "\n\n等待救援时：",
        });
        for advice in seen {
            text.push_str("\n• ");
            text.push_str(advice);
        }
    }
    text.push_str(match language {
        Language::English => "\n\nA doctor on our team has been alerted.",
        Language::Chinese => "\n\n我们已通知值班医生。",
    });
    text
}

/// The answer to a symptom question composed from the assessment, for a model too small to be
/// trusted with medicine: possible causes worded as possibilities, with the leading condition's
/// vetted "what to do" and "when to get care", and what the triage level means.
pub fn possible_causes(language: Language, assessment: &Assessment) -> String {
    let zh = language == Language::Chinese;
    let index = usize::from(zh);
    let shown: Vec<_> = assessment.conditions.iter().take(3).collect();
    let mut text = String::from(if zh {
        "根据您的描述，可能的原因包括（这不是诊断）："
    } else {
        "From what you describe, possible causes include (this is not a diagnosis):"
    });
    for (n, c) in shown.iter().enumerate() {
        let name = if zh { &c.name_zh } else { &c.name };
        text.push_str(&format!("\n{}. {} — {}", n + 1, name, c.about[index]));
    }
    if let Some(first) = shown.first() {
        text.push_str(if zh {
            "\n\n现在可以做的："
        } else {
            "\n\nWhat you can do now: "
        });
        text.push_str(&first.now[index]);
        text.push_str(if zh {
            "\n\n何时就医："
        } else {
            "\n\nWhen to get care: "
        });
        text.push_str(&first.seek_care[index]);
    }
    text.push_str("\n\n");
    text.push_str(level_advice(language, assessment.level));
    text
}

/// What a triage level asks the patient to do.
fn level_advice(language: Language, level: TriageLevel) -> &'static str {
    match (level, language == Language::Chinese) {
        (TriageLevel::Emergency, false) => {
            "What you describe could be serious: call your local emergency number or go to an emergency department now."
        }
        (TriageLevel::Emergency, true) => "您描述的情况可能很严重：请立即拨打急救电话或前往急诊。",
        (TriageLevel::Urgent, false) => "Please see a doctor today.",
        (TriageLevel::Urgent, true) => "请今天就去看医生。",
        (TriageLevel::Routine, false) => {
            "It would be sensible to book an appointment with your doctor in the next few days."
        }
        (TriageLevel::Routine, true) => "建议在接下来几天内预约医生就诊。",
        (TriageLevel::SelfCare, false) => {
            "This can usually be looked after at home; a pharmacist can help. See a doctor if it gets worse or does not settle."
        }
        (TriageLevel::SelfCare, true) => {
            "这种情况通常可以在家自行处理，药师也可以提供帮助。如果加重或不见好转，请就医。"
        }
    }
}

/// The assessment for the model's system prompt, so that a capable model grounds its answer in it.
pub fn assessment_for_model(assessment: &Assessment) -> String {
    let mut text = format!(
        "Deterministic clinical assessment of the patient's messages (use it; word conditions as possibilities, never as a diagnosis): triage level {}.",
        assessment.level.as_str()
    );
    let present: Vec<&str> = assessment
        .findings
        .iter()
        .filter(|f| f.status == "present")
        .map(|f| f.label.as_str())
        .collect();
    if !present.is_empty() {
        text.push_str(&format!(" Findings: {}.", present.join(", ")));
    }
    let denied: Vec<&str> = assessment
        .findings
        .iter()
        .filter(|f| f.status == "absent")
        .map(|f| f.label.as_str())
        .collect();
    if !denied.is_empty() {
        text.push_str(&format!(" Denied: {}.", denied.join(", ")));
    }
    let conditions: Vec<String> = assessment
        .conditions
        .iter()
        .map(|c| format!("{} ({:.0}%)", c.name, c.probability * 100.0))
        .collect();
    text.push_str(&format!(" Possible conditions: {}.", conditions.join("; ")));
    text
}

/// The assessment as a doctor reads it on a card or an alert: findings, measured values, the
/// differential with its evidence, and first-line options with their source.
pub fn assessment_for_doctor(assessment: &Assessment) -> String {
    let mut text = String::from("Assessment (deterministic, for the doctor):");
    let mut present = Vec::new();
    let mut denied = Vec::new();
    for f in &assessment.findings {
        match (f.status, f.value) {
            (_, Some(value)) => {
                present.push(format!("{} {}{}", f.label, value, f.unit.unwrap_or("")))
            }
            ("absent", None) => denied.push(f.label.clone()),
            _ => present.push(f.label.clone()),
        }
    }
    if !present.is_empty() {
        text.push_str(&format!("\nFindings: {}", present.join(", ")));
    }
    if !denied.is_empty() {
        text.push_str(&format!("\nDenied: {}", denied.join(", ")));
    }
    if assessment.conditions.is_empty() {
        text.push_str("\nDifferential: nothing in the condition knowledge fits.");
    }
    for (n, c) in assessment.conditions.iter().enumerate() {
        text.push_str(&format!(
            "\n{}. {} ({}) {:.0}% [{}]: {}",
            n + 1,
            c.name,
            c.icd10,
            c.probability * 100.0,
            c.urgency.as_str(),
            c.supporting.join(", ")
        ));
        if n < 2 && !c.treatment.is_empty() {
            text.push_str(&format!(
                "\n   Options: {} (source: {})",
                c.treatment.join("; "),
                c.source
            ));
        }
    }
    text
}

/// Sent at once when a doctor must see the answer first.
pub fn under_review(language: Language) -> &'static str {
    match language {
        Language::English => {
            "A doctor is reviewing the answer to your message before you see it. You will get it here as soon as they have checked it. If you feel worse in the meantime, contact a clinician or your local emergency number."
        }
        Language::Chinese => {
            "医生正在审核对您问题的回答，审核后会立即发送给您。如在此期间症状加重，请联系医生或拨打当地急救电话。"
        }
    }
}

/// The line under every answer that no doctor has reviewed.
pub fn not_medical_advice(language: Language) -> &'static str {
    match language {
        Language::English => {
            "ℹ️ This is general information from an automated assistant, not medical advice. See a clinician if you are worried or your symptoms change."
        }
        Language::Chinese => {
            "ℹ️ 以上为自动助手提供的一般信息，不构成医疗建议。如有担心或症状变化，请就医。"
        }
    }
}

/// A draft a doctor approved.
pub fn approved(language: Language, draft: &str) -> String {
    match language {
        Language::English => format!("{draft}\n\n✅ Reviewed and approved by a doctor."),
        Language::Chinese => format!("{draft}\n\n✅ 此回答已由医生审核通过。"),
    }
}

/// A doctor's own answer in place of the draft.
pub fn edited(language: Language, text: &str) -> String {
    match language {
        Language::English => {
            format!("{text}\n\n✅ Written by a doctor who reviewed your question.")
        }
        Language::Chinese => format!("{text}\n\n✅ 此回答由审核您问题的医生撰写。"),
    }
}

/// A draft a doctor rejected: their note, or the standard advice.
pub fn rejected(language: Language, note: Option<&str>) -> String {
    let standard = match language {
        Language::English => {
            "A doctor reviewed the answer to your question and decided it should not be sent. Please see a clinician in person about this, so that they can examine you. If it becomes urgent, call your local emergency number."
        }
        Language::Chinese => {
            "医生审核了对您问题的回答，认为不宜发送。请就此当面咨询医生，以便进行检查。如情况紧急，请拨打当地急救电话。"
        }
    };
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(note) => match language {
            Language::English => format!("A doctor reviewed your question and writes:\n\n{note}"),
            Language::Chinese => format!("医生审核了您的问题，回复如下：\n\n{note}"),
        },
        None => standard.to_owned(),
    }
}

/// Sent when no doctor decided in time: safe advice, never the unreviewed draft.
pub fn review_timed_out(language: Language) -> &'static str {
    match language {
        Language::English => {
            "We are sorry: no doctor could review the answer to your question in time, so we are not sending it. Please contact a clinician (your GP, a pharmacist or a telehealth service) about this question. If your symptoms get worse, or you notice chest pain, trouble breathing, confusion or heavy bleeding, call your local emergency number."
        }
        Language::Chinese => {
            "抱歉，医生未能及时审核对您问题的回答，因此我们不会发送该回答。请就此问题咨询医生或药师。如症状加重，或出现胸痛、呼吸困难、意识模糊或大量出血，请拨打当地急救电话。"
        }
    }
}

/// The system prompt: who the assistant is and where its limits are.
pub fn system_prompt(language: Language) -> &'static str {
    match language {
        Language::English => {
            "You are medbot, a careful health information assistant. You are not a doctor and cannot examine anyone. \
             Answer in plain, kind English, in a few short paragraphs. Explain what symptoms commonly mean and what the person can safely do now. \
             Never state a diagnosis as certain. Do not give medicine doses: say a doctor or pharmacist will advise. \
             Always say when and how urgently to see a clinician, and tell the person to call emergency services for danger signs."
        }
        Language::Chinese => {
            "你是 medbot，一个谨慎的健康信息助手。你不是医生，无法为任何人做检查。请用简明、亲切的中文回答，分几个简短的段落。\
             解释症状的常见含义，以及现在可以安全采取的措施。不要把诊断说成确定的。不要给出药物剂量，请说明医生或药师会给出建议。\
             始终说明何时、多紧急需要就医；出现危险信号时，告诉对方拨打急救电话。"
        }
    }
}

/// What medbot is and is not, shown before the patient agrees to use it.
pub fn consent_notice(language: Language) -> &'static str {
    match language {
        Language::English => {
            "medbot is an automated health information assistant. It is not a doctor, cannot examine you, and does not replace a clinician.\n\
             • In an emergency, call your local emergency number. medbot will also tell you to when it recognises one.\n\
             • Answers about medicines, and any answer that could harm you if wrong, are checked by a doctor before you see them.\n\
             • Your messages are stored encrypted so the conversation can continue. You can download or delete them at any time."
        }
        Language::Chinese => {
            "medbot 是自动健康信息助手，不是医生，无法为您做检查，也不能代替医生。\n\
             • 紧急情况请拨打当地急救电话；medbot 识别到紧急情况时也会提醒您。\n\
             • 有关药物的回答，以及任何可能造成伤害的回答，都会先由医生审核再发送给您。\n\
             • 您的消息经加密保存，以便继续对话。您可以随时下载或删除。"
        }
    }
}

/// Before the reference passages in the system prompt.
pub fn references_intro(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Base your answer on these reference passages where they apply, and do not add facts they do not support:"
        }
        Language::Chinese => "请尽量依据以下参考资料作答，不要添加资料中没有依据的内容：",
    }
}

/// When the knowledge base has nothing on the question.
pub fn no_references(language: Language) -> &'static str {
    match language {
        Language::English => {
            "No reference passage matched this question. Say plainly that you have no reference for it, keep to general advice, and do not invent facts or sources."
        }
        Language::Chinese => {
            "没有找到与此问题相关的参考资料。请明确说明没有参考依据，只给出一般性建议，不要编造事实或来源。"
        }
    }
}

/// The sources under an answer: title and link of each passage given to the model.
pub fn sources(language: Language, used: &[super::ports::Reference]) -> String {
    if used.is_empty() {
        return String::new();
    }
    let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
    for r in used {
        let key = (r.title.as_str(), r.source.as_deref());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    let mut text = String::from(match language {
        Language::English => "\n\nSources:",
        Language::Chinese => "\n\n参考来源：",
    });
    for (title, source) in seen {
        text.push_str("\n• ");
        text.push_str(title);
        if let Some(source) = source {
            text.push_str(" — ");
            text.push_str(source);
        }
    }
    text
}

/// Shown when a message is too long to answer.
pub fn message_too_long(language: Language, max_chars: usize) -> String {
    match language {
        Language::English => format!(
            "Your message is too long for me to read in one go (the limit is {max_chars} characters). Please send the most important part, or split it into a few shorter messages."
        ),
        Language::Chinese => {
            format!(
                "您的消息太长了（上限为 {max_chars} 个字符）。请发送最重要的部分，或分成几条较短的消息。"
            )
        }
    }
}

/// Shown when a patient who has not agreed to the terms writes: nothing of theirs is read or kept.
pub fn consent_required(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Before I can read your messages, please agree to the terms: send /start."
        }
        Language::Chinese => "在我读取您的消息之前，请先同意使用条款：发送 /start。",
    }
}

/// Shown when a message has no words in it.
pub fn empty_message(language: Language) -> &'static str {
    match language {
        Language::English => {
            "I did not find any words in your message. Please describe what is worrying you."
        }
        Language::Chinese => "您的消息里没有文字。请描述一下您担心的问题。",
    }
}

/// Shown when something inside medbot failed; the cause goes to the log, not to the patient.
pub fn internal_error(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Sorry, something went wrong on our side and your message could not be handled. Please try again in a minute. If this is urgent, call your local emergency number."
        }
        Language::Chinese => {
            "抱歉，我们这边出了问题，未能处理您的消息。请稍后再试。如情况紧急，请拨打当地急救电话。"
        }
    }
}

/// A patient's /meds list has no room for more.
pub fn medication_list_full(language: Language, limit: usize) -> String {
    match language {
        Language::English => format!(
            "Your list already holds {limit} medicines and allergies, the most it can. Remove some with /meds first."
        ),
        Language::Chinese => {
            format!("您的列表已有 {limit} 条药物和过敏记录，已达上限。请先通过 /meds 删除一些。")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emergency_rule_has_advice_in_both_languages() {
        let emergencies = [
            "I have crushing chest pain and my left arm is numb",
            "her face is drooping and her speech is slurred",
            "I cant breathe",
            "my throat is swelling after a bee sting",
            "he is bleeding heavily and it wont stop",
            "she collapsed and is unconscious",
            "he is having a seizure",
            "I want to kill myself",
            "she took a whole bottle of pills",
            "worst headache of my life, came on suddenly",
            "my 6 week old baby has a fever of 38.2",
            "I am 20 weeks pregnant and bleeding",
            "fever, stiff neck and a purple rash that does not fade",
            "oxygen saturation 85%",
            "blood pressure 70/40",
            "heart rate 150",
            "heart rate 35",
            "breathing 40 times a minute",
            "blood sugar 1.9",
            "blood sugar 35 mmol and vomiting",
            "blood pressure 220/130 and chest pain",
            "temperature 30.5 and confused",
            "32 weeks pregnant, BP 170/115",
            "my leg suddenly went cold and pale and I cant move my toes",
            "excruciating stomach pain",
            "back pain for a week and now numb between my legs when I wipe",
            "fever 39, breathing 28 times a minute, blood pressure 95/60 and confused",
        ];
        let mut covered = std::collections::HashSet::new();
        for text in emergencies {
            let a = crate::triage::assess(text);
            for flag in a.red_flags() {
                covered.insert(flag);
            }
        }
        for flag in RedFlag::ALL {
            let is_emergency_rule = meanwhile(*flag, Language::English).is_some();
            assert_eq!(
                is_emergency_rule,
                meanwhile(*flag, Language::Chinese).is_some(),
                "{flag}: advice in one language only"
            );
            if is_emergency_rule {
                assert!(covered.contains(flag), "no test message fires {flag}");
            }
        }
        let a = crate::triage::assess("he is having a seizure, fitting");
        let text = emergency_advice(Language::English, &a);
        assert!(text.contains("911") && text.matches("cushion").count() == 1);
        let calm = crate::triage::assess("what is vitamin D for?");
        assert!(emergency_advice(Language::Chinese, &calm).contains("120"));
    }
}
