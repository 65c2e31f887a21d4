//! What the bot itself says on Telegram (the consultation's own texts are in `consult::wording`).

use crate::domain::{Language, MedicationKind};

/// The consent button's text: it must contain "I agree".
pub fn agree_button(language: Language) -> &'static str {
    match language {
        Language::English => "✅ I agree",
        Language::Chinese => "✅ I agree / 我同意",
    }
}

pub fn consent_prompt(language: Language) -> &'static str {
    match language {
        Language::English => {
            "To start, please read this and press the button to agree. Nothing you write is stored or read until you do."
        }
        Language::Chinese => {
            "开始之前，请阅读以下内容并点击按钮表示同意。在您同意之前，您写的任何内容都不会被保存或读取。"
        }
    }
}

pub fn consent_recorded(language: Language) -> &'static str {
    match language {
        Language::English => "Thank you. Tell me what is worrying you, in your own words.",
        Language::Chinese => "谢谢。请用您自己的话告诉我您担心的问题。",
    }
}

pub fn help(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Write your question in your own words.\n\n/new – start a new topic\n/doctor – ask for a human doctor\n/meds – your medicines and allergies\n/history – get your conversation as a file\n/forget – delete all your data\n/help – this list\n\nIn an emergency, call your local emergency number."
        }
        Language::Chinese => {
            "请用您自己的话描述问题。\n\n/new – 开始新话题\n/doctor – 请真人医生回答\n/meds – 您的药物和过敏\n/history – 下载您的对话记录\n/forget – 删除您的所有数据\n/help – 显示此列表\n\n紧急情况请拨打当地急救电话。"
        }
    }
}

pub fn new_topic(language: Language) -> &'static str {
    match language {
        Language::English => {
            "New topic started. Earlier messages are kept, but I will not use them for new answers."
        }
        Language::Chinese => "已开始新话题。之前的消息会保留，但不会用于新的回答。",
    }
}

pub fn doctor_requested(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Write your question, and a doctor will review the answer before you see it."
        }
        Language::Chinese => "请写下您的问题，医生会在您看到回答之前先进行审核。",
    }
}

pub fn forget_confirm(language: Language) -> &'static str {
    match language {
        Language::English => {
            "This deletes your whole conversation and everything medbot holds about you. It cannot be undone."
        }
        Language::Chinese => "这将删除您的全部对话以及 medbot 保存的关于您的所有信息，且无法恢复。",
    }
}

pub fn forget_button(language: Language) -> &'static str {
    match language {
        Language::English => "🗑 Delete everything",
        Language::Chinese => "🗑 全部删除",
    }
}

pub fn forgotten(language: Language) -> &'static str {
    match language {
        Language::English => "Everything has been deleted. Send /start if you want to talk again.",
        Language::Chinese => "已全部删除。如需再次使用，请发送 /start。",
    }
}

pub fn history_caption(language: Language) -> &'static str {
    match language {
        Language::English => "Your conversation with medbot.",
        Language::Chinese => "您与 medbot 的对话记录。",
    }
}

/// Stickers, photos, voice notes, files and the like: medbot reads text only.
pub fn text_only(language: Language) -> &'static str {
    match language {
        Language::English => {
            "I can only read text messages. Please describe in words what is worrying you. If you wanted to show a doctor a photo or a document, please see a clinician in person."
        }
        Language::Chinese => {
            "我只能读取文字消息。请用文字描述您担心的问题。如需让医生查看照片或文件，请当面就医。"
        }
    }
}

pub fn edits_not_read(language: Language) -> &'static str {
    match language {
        Language::English => {
            "I saw that you edited a message. I answer new messages only: please send the corrected text as a new message."
        }
        Language::Chinese => "您编辑了一条消息。我只回复新消息，请把修改后的内容作为新消息发送。",
    }
}

/// Replaces a streamed draft that a newer message superseded.
pub fn superseded(language: Language) -> &'static str {
    match language {
        Language::English => "(Stopped: I am answering your newer message instead.)",
        Language::Chinese => "（已停止：正在回复您的新消息。）",
    }
}

/// The answer to a button that is forged, stale, or pressed where it does not belong.
pub fn button_no_longer_valid(language: Language) -> &'static str {
    match language {
        Language::English => "This button is no longer valid.",
        Language::Chinese => "此按钮已失效。",
    }
}

// ---------------------------------------------------------------------------------------------
// /meds

pub fn allergy_word(language: Language) -> &'static str {
    match language {
        Language::English => "allergy",
        Language::Chinese => "过敏",
    }
}

/// The patient's list: what they take and what they are allergic to, and why it matters.
pub fn meds_list(language: Language, medicines: &[String], allergies: &[String]) -> String {
    let bullets = |items: &[String], none: &str| -> String {
        if items.is_empty() {
            format!("  {none}")
        } else {
            items
                .iter()
                .map(|i| format!("• {i}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    match language {
        Language::English => format!(
            "Your medicines:\n{}\n\nYour allergies:\n{}\n\nThe doctor who reviews an answer about medicines sees this list and medbot checks it for interactions. Press ❌ to remove an entry, or add one below.",
            bullets(medicines, "none saved"),
            bullets(allergies, "none saved"),
        ),
        Language::Chinese => format!(
            "您正在使用的药物：\n{}\n\n您的过敏：\n{}\n\n医生审核用药相关回答时会看到此列表，medbot 也会据此检查药物相互作用。点击 ❌ 删除条目，或在下方添加。",
            bullets(medicines, "暂无"),
            bullets(allergies, "暂无"),
        ),
    }
}

pub fn meds_add_medicine_button(language: Language) -> &'static str {
    match language {
        Language::English => "➕ Medicine",
        Language::Chinese => "➕ 药物",
    }
}

pub fn meds_add_allergy_button(language: Language) -> &'static str {
    match language {
        Language::English => "➕ Allergy",
        Language::Chinese => "➕ 过敏",
    }
}

const PROMPT_MEDICINE_EN: &str = "Which medicine do you take? Reply to this message with its name (several: separate them with commas).";
const PROMPT_MEDICINE_ZH: &str = "您正在使用哪种药物？请回复此消息写下药名（多个请用逗号分隔）。";
const PROMPT_ALLERGY_EN: &str = "Which medicine are you allergic to? Reply to this message with its name (several: separate them with commas).";
const PROMPT_ALLERGY_ZH: &str = "您对哪种药物过敏？请回复此消息写下药名（多个请用逗号分隔）。";

/// Asks for names; the patient's reply to it is read as names, not as a question.
pub fn meds_prompt(language: Language, kind: MedicationKind) -> &'static str {
    match (language, kind) {
        (Language::English, MedicationKind::Medicine) => PROMPT_MEDICINE_EN,
        (Language::Chinese, MedicationKind::Medicine) => PROMPT_MEDICINE_ZH,
        (Language::English, MedicationKind::Allergy) => PROMPT_ALLERGY_EN,
        (Language::Chinese, MedicationKind::Allergy) => PROMPT_ALLERGY_ZH,
    }
}

/// Which prompt a message of the bot's is, if it is one.
pub fn meds_prompt_kind(text: &str) -> Option<MedicationKind> {
    match text {
        PROMPT_MEDICINE_EN | PROMPT_MEDICINE_ZH => Some(MedicationKind::Medicine),
        PROMPT_ALLERGY_EN | PROMPT_ALLERGY_ZH => Some(MedicationKind::Allergy),
        _ => None,
    }
}

pub fn meds_placeholder(language: Language, kind: MedicationKind) -> &'static str {
    match (language, kind) {
        (Language::English, MedicationKind::Medicine) => "e.g. warfarin, metformin",
        (Language::Chinese, MedicationKind::Medicine) => "例如：华法林，二甲双胍",
        (Language::English, MedicationKind::Allergy) => "e.g. penicillin",
        (Language::Chinese, MedicationKind::Allergy) => "例如：青霉素",
    }
}

pub fn meds_usage(language: Language) -> &'static str {
    match language {
        Language::English => {
            "/meds – your medicines and allergies\n/meds add warfarin, metformin – add medicines\n/meds allergy penicillin – add an allergy\n/meds remove warfarin – remove one"
        }
        Language::Chinese => {
            "/meds – 查看您的药物和过敏\n/meds add 华法林，二甲双胍 – 添加药物\n/meds allergy 青霉素 – 添加过敏\n/meds remove 华法林 – 删除"
        }
    }
}

pub fn meds_not_on_list(language: Language, name: &str) -> String {
    match language {
        Language::English => format!("\"{name}\" is not on your list."),
        Language::Chinese => format!("您的列表中没有“{name}”。"),
    }
}

/// After names were added: which ones medbot knows, and which it keeps as written.
pub fn meds_saved(language: Language, known: &[String], unknown: &[String]) -> String {
    let mut text = String::new();
    match language {
        Language::English => {
            if !known.is_empty() {
                text.push_str(&format!("Saved: {}.", known.join(", ")));
            }
            if !unknown.is_empty() {
                text.push_str(&format!(
                    "{}Saved as you wrote it: {}. medbot does not know this name, so it cannot check it for interactions; the reviewing doctor will see it. Please check the spelling, or use the generic name from the package.",
                    if text.is_empty() { "" } else { "\n" },
                    unknown.join(", ")
                ));
            }
        }
        Language::Chinese => {
            if !known.is_empty() {
                text.push_str(&format!("已保存：{}。", known.join("，")));
            }
            if !unknown.is_empty() {
                text.push_str(&format!(
                    "{}已按原文保存：{}。medbot 不认识这个名称，无法检查相互作用；审核医生会看到它。请检查拼写，或使用包装上的通用名。",
                    if text.is_empty() { "" } else { "\n" },
                    unknown.join("，")
                ));
            }
        }
    }
    text
}

/// The offer under a message that names a medicine the patient takes or is allergic to.
pub fn meds_offer(language: Language) -> &'static str {
    match language {
        Language::English => {
            "Shall I save this to your /meds list? The doctor who reviews answers about medicines sees it, and medbot checks it for interactions."
        }
        Language::Chinese => {
            "要把它保存到您的 /meds 列表吗？审核用药回答的医生会看到它，medbot 也会据此检查相互作用。"
        }
    }
}

pub fn meds_decline_button(language: Language) -> &'static str {
    match language {
        Language::English => "✖ Don't save",
        Language::Chinese => "✖ 不保存",
    }
}

pub fn meds_not_saved(language: Language) -> &'static str {
    match language {
        Language::English => "Not saved. You can add medicines at any time with /meds.",
        Language::Chinese => "未保存。您可以随时通过 /meds 添加药物。",
    }
}

pub fn meds_saved_short(language: Language) -> &'static str {
    match language {
        Language::English => "Saved",
        Language::Chinese => "已保存",
    }
}

pub fn meds_saved_one(language: Language, kind: MedicationKind, name: &str) -> String {
    match (language, kind) {
        (Language::English, MedicationKind::Medicine) => {
            format!("Saved to your medicines: {name}. /meds to see or change your list.")
        }
        (Language::English, MedicationKind::Allergy) => {
            format!("Saved to your allergies: {name}. /meds to see or change your list.")
        }
        (Language::Chinese, MedicationKind::Medicine) => {
            format!("已保存到您的药物：{name}。发送 /meds 查看或修改。")
        }
        (Language::Chinese, MedicationKind::Allergy) => {
            format!("已保存到您的过敏：{name}。发送 /meds 查看或修改。")
        }
    }
}

pub fn meds_removed(language: Language) -> &'static str {
    match language {
        Language::English => "Removed",
        Language::Chinese => "已删除",
    }
}
