//! What the bot itself says on Telegram (the consultation's own texts are in `consult::wording`).

use crate::domain::Language;

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
            "Write your question in your own words.\n\n/new – start a new topic\n/doctor – ask for a human doctor\n/history – get your conversation as a file\n/forget – delete all your data\n/help – this list\n\nIn an emergency, call your local emergency number."
        }
        Language::Chinese => {
            "请用您自己的话描述问题。\n\n/new – 开始新话题\n/doctor – 请真人医生回答\n/history – 下载您的对话记录\n/forget – 删除您的所有数据\n/help – 显示此列表\n\n紧急情况请拨打当地急救电话。"
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
