//! Triage of what the patient wrote: deterministic red-flag rules in English and Simplified Chinese.
//! No model is involved, so the answer is immediate and the same every time. The rules lean towards
//! over-triage: a missed emergency costs a life, a false alarm costs a phone call.

use std::sync::LazyLock;

use regex::Regex;

use super::rules::RedFlag;
use super::text::{Mention, Phrases, Text};
use crate::assessment::measure::Measurements;
use crate::domain::TriageLevel;

/// Facts found in the messages of one topic (oldest first).
struct Findings {
    /// Newest last: the newest message that mentions a thing decides whether it is there.
    texts: Vec<Text>,
    /// Highest temperature mentioned, in °C.
    temperature_c: Option<f32>,
    /// Age in months when a baby's age is given.
    infant_age_months: Option<f32>,
    /// Longest duration mentioned, in days.
    duration_days: Option<f32>,
    /// Vital signs and the like, newest stated.
    measured: Measurements,
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
    // Croup or asthma at its worst: noise at rest, the chest sucking in, blue lips (NICE NG143).
    "stridor at rest", "noisy ~ breathing ~ at rest", "noise ~ breathing in ~ calm", "sucking in ~ ribs",
    "ribs ~ sucking in", "skin ~ sucking in", "recession", "tracheal tug", "嘴唇~发青", "嘴唇~发紫",
    "凹进去", "三凹征", "吸气~凹",
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
    // FAST in the words families use (Stroke Association; 中国卒中学会 "BE FAST").
    "all jumbled", "jumbled up", "coming out ~ jumbled", "words ~ wrong", "talking gibberish",
    "out of ~ side of ~ mouth", "side of ~ mouth ~ dribbl*", "dribbl* ~ side of", "mouth ~ droop*",
    "lopsided", "face ~ dropped", "hand ~ feels heavy", "arm ~ feels heavy", "leg ~ feels heavy",
    "arm ~ gone heavy", "heavy ~ one side", "嘴~歪", "脸~歪", "说话~含糊", "含含糊糊", "口齿~不清",
    "拿不住", "筷子~掉", "一边~没劲", "手~没劲~一边", "胳膊~抬不起", "半身~不遂",
]}
phrases! {BLEEDING_HEAVY, [
    "bleeding heavily", "heavy bleeding", "bleeding ~ wont stop", "wont stop bleeding",
    "cant stop ~ bleeding", "bleeding ~ not stopping", "lots of blood", "blood everywhere",
    "spurting", "soaked ~ blood", "soaking ~ pads", "pool of blood", "bleeding badly",
    "bleeding a lot", "vomit* blood", "throwing up blood", "threw up blood",
    "大出血", "血止不住", "止不住血", "流血不止", "出血不止", "血流不止", "流了很多血", "出了很多血",
    "很多血", "大量出血", "吐血", "呕血", "喷血",
]}
// Not a bare 血: it is in 血压, 血糖 and 血氧 too.
phrases! {BLEEDING, [
    "bleed*", "blood*", "spotting", "出血", "流血", "见红", "有血", "带血", "血块", "血丝", "一滩血",
]}
phrases! {UNCONSCIOUS, [
    "unconscious", "collapsed", "not waking", "hasnt woken", "not woken", "hasnt woke", "still not awake", "wont wake", "cant wake", "unresponsive", "no pulse",
    "not responding", "still out", "wont come round", "hasnt come round", "not come round",
    "昏迷", "失去意识", "叫不醒", "不省人事", "没有意识", "没反应", "休克", "倒地不起",
]}
// A faint the person has come round from is urgent, not an emergency, unless something about it
// is dangerous (see `transient_loss_of_consciousness`).
phrases! {FAINTED, [
    "passed out", "passing out", "fainted", "fainting", "blacked out", "knocked out",
    "lost consciousness", "syncope", "syncopal", "晕倒", "昏倒", "晕过去", "晕厥", "昏过去",
]}
phrases! {FAINT_DANGER, [
    "during exercise", "while running", "on exertion", "exertion*", "no warning", "without warning",
    "palpitation*", "heart racing", "chest pain", "family history ~ sudden death", "sudden death",
    "lying down", "while lying", "hit ~ head", "head injury", "still confused", "still drowsy",
    "not back to normal", "运动时", "跑步时", "毫无征兆", "没有预兆", "心慌", "心悸", "胸痛", "撞到头",
]}
phrases! {SUICIDE_PLAN, [
    "cant do this anymore", "cant go on", "cant take it anymore", "take them all", "saved up ~ pills",
    "saving up ~ pills", "stockpil*", "say* goodbye", "goodbye note", "suicide note", "going to jump",
    "no point ~ living", "no point going on", "end things", "not be here tomorrow",
    "saving ~ tablets", "saved ~ tablets", "saving up ~ tablets", "stash* ~ tablets", "stash* ~ pills",
    "tonight is the night", "written ~ letters", "letters ~ for ~ kids", "letter* ~ to ~ family",
    "want it all to stop", "make it all stop", "want everything to stop", "no way out",
    "plan to ~ end it", "planned ~ how", "didnt want to wake up", "dont want to wake up",
    "not want to wake up", "hope i dont wake up", "不想醒来", "不想再醒", "存~安眠药", "存了~药", "不想拖累", "最后一面",
    "撑不下去", "活着没意义", "结束这一切", "不想~撑下去", "攒了", "安眠药~准备好", "信~写好了", "活着没有意义", "攒了~药", "不想再活", "写好了遗书", "遗书", "跳楼", "了结",
]}
phrases! {SWEATY_OR_GREY, [
    "sweat*", "clammy", "grey", "gray", "ashen", "diaphore*", "出~汗", "冷汗", "大汗", "满头~汗", "脸色~灰",
    "脸色~发白", "脸色~苍白",
]}
phrases! {ANGINA_EQUIVALENT, [
    "jaw", "left arm", "indigestion", "heartburn", "epigastric", "upper ~ stomach", "nause*",
    "feels sick", "feel sick", "short* of breath", "breathless*", "下巴", "左臂", "胃不舒服", "胃~难受",
    "烧心", "恶心", "气短", "胸闷", "心口",
]}
phrases! {CARDIAC_RISK, [
    "diabet*", "heart disease", "angina", "previous heart attack", "stent", "bypass", "糖尿病", "冠心病",
    "心脏病", "放过支架", "心梗",
]}
phrases! {COLD_PALE_LIMB, [
    "cold and pale", "pale and cold", "leg ~ cold", "foot ~ cold", "arm ~ cold", "cold ~ leg",
    "cold ~ foot", "white ~ leg", "leg ~ white", "leg ~ pale", "foot ~ pale", "pulseless",
    "腿~发凉", "脚~发凉", "腿~冰凉", "脚~冰凉", "腿~发白", "脚~发白", "脚~发紫",
]}
phrases! {LIMB_DEFICIT, [
    "cant move ~ toes", "cant move ~ foot", "cant move ~ leg", "numb*", "pins and needles", "paralys*",
    "cant feel", "动不了", "麻", "没知觉",
]}
phrases! {BACK_PAIN, [
    "back pain", "bad back", "back ~ hurt*", "back ~ ache*", "backache*", "sciatica", "disc", "lumbar",
    "腰疼", "腰痛", "背疼", "背痛", "腰椎", "坐骨神经", "腰~疼", "腰间盘",
]}
// Cauda equina red flags (NICE CKS, GIRFT 2023): saddle numbness, new bladder or bowel trouble, both
// legs affected.
phrases! {CAUDA_EQUINA_SIGNS, [
    "saddle ~ numb*", "saddle anaesth*", "saddle anesth*", "numb* ~ saddle", "saddle ~ reduced",
    "reduced ~ saddle", "saddle ~ tingl*", "saddle ~ loss", "numb ~ wipe", "wipe ~ numb", "between ~ legs ~ numb", "numb ~ between ~ legs",
    "cant feel ~ toilet paper", "cant feel ~ wip*", "toilet paper ~ cant feel", "feel ~ when ~ wip*",
    "reduced sensation ~ perianal", "perianal ~ sensation", "perianal ~ anaesthesia",
    "strain* ~ to pass urine", "strain* ~ to wee", "strain* ~ to pee", "leaking ~ urine",
    "episode of leaking", "leaked ~ urine", "down both legs", "both legs", "ankle reflexes absent",
    "擦屁股~没感觉", "擦屁股~感觉不到", "排尿~费劲", "排尿困难", "尿~解不出", "两条腿~都",
    "numb ~ bum", "bum ~ numb", "numb ~ groin", "groin ~ numb", "perianal ~ numb*", "perineal ~ numb*",
    "cant pee", "havent ~ able to pee", "unable to pass urine", "cant pass urine", "not passed urine",
    "retention", "lost control ~ bladder", "wet myself", "incontinen*", "both legs ~ numb",
    "both legs ~ weak", "both legs ~ tingl*", "legs ~ both ~ numb", "bilateral ~ leg",
    "鞍区~麻", "鞍区~感觉~减退", "鞍区~感觉~消失", "鞍区~没~感觉", "鞍区~感觉~异常", "会阴~麻", "屁股~麻", "肛门~麻", "尿不出", "排不出尿", "大小便失禁", "小便失禁", "两条腿~麻",
    "双腿~麻", "双下肢~麻", "双腿~无力",
]}
phrases! {COPD, [
    "copd", "emphysema", "chronic bronchitis", "chronic obstructive", "慢阻肺", "慢性阻塞性肺", "肺气肿",
    "慢支",
]}
phrases! {CHILD_WORDS, [
    "toddler", "child", "kid", "preschooler", "infant", "baby", "婴儿", "宝宝", "幼儿", "小孩", "孩子",
    "孙子", "孙女", "外孙", "小朋友",
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
    "swallowed ~ battery", "ate ~ pills", "swallowed ~ pills", "took ~ pills ~ all",
    "antifreeze", "pesticide", "weed killer", "carbon monoxide",
    "吃了很多药", "吃了一整瓶", "一整瓶", "一整盒", "吃多了药", "药~过量", "服药过量",
    "误服", "误食", "农药", "吞了~药", "喝了~消毒", "吞了电池",
    "吃了~好多~药", "吃了~很多~药", "好多药", "吃了~一盒", "吃了~一瓶",
    "大半瓶", "吃了~半瓶", "一把~药", "吃了~一把",
]}
// Ectopic pregnancy until proved otherwise: pregnant or a late period, pain, and shoulder-tip
// pain or feeling faint (RCOG Green-top 21).
phrases! {SHOULDER_TIP, [
    "shoulder tip", "tip of ~ shoulder", "shoulder-tip", "pain ~ shoulder", "肩膀~疼", "肩尖", "肩~痛",
]}
phrases! {LATE_PERIOD, [
    "period ~ late", "late period", "weeks late", "days late", "overdue ~ period", "missed ~ period", "periods ~ stopped", "月经~推迟", "停经",
    "月经~没来", "大姨妈~没来",
]}
phrases! {DIZZY_OR_FAINT, ["dizzy", "faint*", "lightheaded", "light headed", "头晕", "晕倒", "眼前发黑"]}
// A child who is floppy or cannot be kept awake (NICE NG143 red): always an emergency.
phrases! {FLOPPY_CHILD, [
    "floppy", "limp", "cant keep ~ awake", "wont wake", "hard to wake", "软绵绵", "浑身发软", "叫不醒",
    "叫不太醒", "很难叫醒", "叫~不太醒", "叫也叫不醒",
]}
// Something inhaled: choking that has passed can leave it in a bronchus (a cough or wheeze that
// goes on after it is an emergency, NICE CKS choking).
phrases! {CHOKED_ON, [
    "choked on", "choking on", "inhaled ~ peanut", "breathed in ~ peanut", "swallowed ~ wrong way",
    "went down ~ wrong way", "呛到", "呛着", "卡~气管", "误吸", "吸进~气管",
]}
phrases! {COUGH_OR_NOISE, [
    "cough*", "wheez*", "whistl*", "noisy breathing", "咳", "喘", "呼哧",
]}
// Poisoning, but not the "food poisoning" of a stomach bug.
phrases! {POISONED, ["poison*", "中毒"]}
phrases! {FOOD_POISONING, ["food poison*", "食物中毒", "吃坏肚子", "吃坏了"]}
// Anticoagulants and antiplatelets: a head injury on them is a CT now (NICE NG232).
phrases! {BLOOD_THINNER, [
    "warfarin", "coumadin", "apixaban", "eliquis", "rivaroxaban", "xarelto", "edoxaban", "dabigatran",
    "pradaxa", "blood thinner*", "anticoagula*", "clopidogrel", "华法林", "抗凝", "利伐沙班", "阿哌沙班",
    "达比加群", "氯吡格雷",
]}
phrases! {VOMITED, ["vomit*", "threw up", "throwing up", "been sick", "吐了", "呕吐"]}
// A child who got at medicines (not their own): a poisons emergency however well they look.
phrases! {CHILD_GOT_MEDICINE, [
    "got into ~ tablets", "got into ~ pills", "got into ~ medicine*", "got hold of ~ tablets",
    "got hold of ~ pills", "swallowed ~ tablet*", "swallowed ~ pill*", "ate ~ tablet*", "ate ~ pill*",
    "eaten ~ tablet*", "eaten ~ pill*", "chewing ~ tablet*", "chewed ~ tablet*", "found ~ tablets",
    "翻出来", "误吞", "吃了~药片", "少了~片", "少了~粒", "偷吃~药", "吃了~奶奶的药", "吃了~爷爷的药",
]}
// Tablets taken of a stated count without the word next to it: "took some of her mum's tablets",
// then "she's had about 15".
phrases! {TABLET_WORDS, ["tablets", "pills", "tabs", "capsules", "药片", "药"]}
phrases! {ASTHMA_KNOWN, [
    "asthma*", "asthmatic", "inhaler", "salbutamol", "ventolin", "albuterol", "哮喘", "沙丁胺醇",
    "万托林",
]}
phrases! {WHEEZE, ["wheez*", "喘鸣", "哮鸣", "嗓子~呼呼", "吱吱"]}
phrases! {BABY_OF_DAYS, [
    "newborn*", "new born", "neonat*", "term baby", "day-* visit", "days old", "出生~天", "新生儿",
    "刚出生", "满月",
]}
// "子宫增大如孕10周": a uterus the size of a pregnancy, not a pregnancy.
phrases! {UTERUS_SIZE, ["如孕", "size of ~ week* ~ pregnan*", "size of a ~ week* ~ pregnan*"]}
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
    "孕~周", "孕早期", "孕晚期", "positive pregnancy test", "pregnancy test ~ positive", "positive test",
    "tested positive ~ pregnan*", "验孕~试纸~阳性", "验孕~两条杠",
    "验孕~阳性", "验孕~两道杠", "试纸~两道杠", "测出~怀孕",
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
    // Fewer wet nappies is the parents' measure of a child drying out (NICE NG84).
    "only ~ wet nappies", "only ~ wet nappy", "only ~ wet diapers", "fewer wet nappies",
    "less wet nappies", "fewer wet diapers", "dry nappies", "dry nappy", "nappies ~ dry",
    "sunken eyes", "no tears", "peeing ~ much less", "weeing ~ much less", "passing ~ little urine",
    "尿布~干", "尿~少了", "尿量~少", "哭~没有眼泪", "眼窝~凹陷",
]}
phrases! {HEAD_INJURY, [
    "hit ~ head", "bumped ~ head", "banged ~ head", "head injury", "fell ~ on ~ head",
    "concussion", "撞到头", "摔到头", "头部~受伤", "头~撞", "脑震荡",
    "磕~头", "头~磕", "后脑~磕", "脑袋~磕", "磕~后脑", "磕~脑袋", "摔~后脑", "头~摔",
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

phrases! {DROWSY, [
    "drowsy", "very sleepy", "hard to wake", "difficult to rouse", "lethargic", "obtunded", "gcs",
    "not responding normally", "floppy", "嗜睡", "昏昏沉沉", "叫不太醒", "精神差", "反应迟钝", "意识障碍",
]}
phrases! {INFECTION, [
    "infection", "infected", "pneumonia", "uti", "cellulitis", "sepsis", "septic", "rigors", "shivering",
    "感染", "肺炎", "寒战", "发冷", "败血症", "脓毒",
]}
phrases! {VOMITING_ANY, ["vomit*", "throwing up", "threw up", "being sick", "呕吐", "吐了", "恶心"]}
phrases! {VISION_CHANGE, [
    "blurred vision", "blurry vision", "vision ~ blur*", "seeing ~ spots", "flashing lights",
    "double vision", "lost ~ vision", "视力模糊", "看不清", "眼前~发黑", "重影", "视物模糊",
]}

static TEMPERATURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{2,3}(?:\.\d+)?)\s*(°\s*[cf]?|℃|℉|度|degrees?(?:\s*[cf])?|[cf]\b)?")
        .expect("valid regex")
});
static AGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|[一二两三四五六七八九十]+)\s*-?\s*(weeks?|wks?|months?|mos?|周|个月|天|days?)\s*-?\s*(old|大)?")
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

use crate::assessment::measure::number_word;

impl Findings {
    fn of_topic(messages: &[&str]) -> Self {
        let mut all = Findings {
            texts: Vec::new(),
            temperature_c: None,
            infant_age_months: None,
            duration_days: None,
            measured: Measurements::default(),
        };
        for message in messages {
            let one = Self::of(message);
            let newer = |a: Option<f32>, b: Option<f32>| b.or(a);
            all.temperature_c = newer(all.temperature_c, one.temperature_c);
            all.infant_age_months = newer(all.infant_age_months, one.infant_age_months);
            all.duration_days = match (all.duration_days, one.duration_days) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            all.measured.overlay(&one.measured);
            all.texts.extend(one.texts);
        }
        all
    }

    fn of(message: &str) -> Self {
        let text = Text::new(message);
        let measured = Measurements::of(&text.normalized);
        let has_temperature_context = TEMPERATURE_CONTEXT.found_in(&text);
        let mentions_baby = INFANT.found_in(&text);
        let temperature_c = TEMPERATURE
            .captures_iter(&text.normalized)
            .filter_map(|c| {
                let value: f32 = c[1].parse().ok()?;
                let unit = c.get(2).map(|m| m.as_str());
                // A bare whole number is an age as often as a temperature ("40M", "fever"); it
                // needs a unit or a decimal point.
                if unit.is_none() && (!has_temperature_context || !c[1].contains('.')) {
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
        // The assessment's reading of durations knows ages from durations ("宝宝10个月").
        let duration_days = measured
            .duration_days
            .or_else(|| LONG_LASTING.found_in(&text).then_some(30.0));
        Self {
            temperature_c: temperature_c.or(measured.temperature_c),
            texts: vec![text],
            infant_age_months,
            duration_days,
            measured,
        }
    }

    /// Whether the newest message that speaks of it affirms it.
    fn has(&self, phrases: &Phrases) -> bool {
        self.texts
            .iter()
            .rev()
            .map(|t| phrases.mention_in(t))
            .find(|m| *m != Mention::None)
            == Some(Mention::Present)
    }
}

/// The red-flag rules that fire on the messages of one topic (oldest first), with their levels,
/// most serious first.
pub(super) fn red_flags(messages: &[&str]) -> Vec<(TriageLevel, RedFlag)> {
    let f = Findings::of_topic(messages);
    let mut found: Vec<(TriageLevel, RedFlag)> = Vec::new();
    let mut rule = |level, reason, fired: bool| {
        if fired {
            found.push((level, reason));
        }
    };
    use TriageLevel::{Emergency, Routine, Urgent};

    let chest_pain = f.has(&CHEST_PAIN);
    let severe = f.has(&SEVERE);
    let breathing_severe = f.has(&BREATHING_SEVERE);
    let breathing_difficulty = f.has(&BREATHING_DIFFICULTY);
    let fever = f.has(&FEVER) || f.temperature_c.is_some_and(|t| t >= 38.0);
    let high_fever = f.has(&HIGH_FEVER_WORDS) || f.temperature_c.is_some_and(|t| t >= 39.0);
    let infant = f.has(&INFANT) || f.infant_age_months.is_some_and(|m| m < 12.0);
    let young_infant = f.has(&NEWBORN) || f.infant_age_months.is_some_and(|m| m < 3.0);
    let pregnant = f.has(&PREGNANT) && !f.has(&UTERUS_SIZE);
    let pain = f.has(&PAIN);
    let headache = f.has(&HEADACHE);
    let abdominal_pain = f.has(&ABDOMINAL_PAIN);
    let stiff_neck = f.has(&STIFF_NECK);
    let long_lasting = f.duration_days.is_some_and(|d| d >= 14.0);

    // Tightness with wheeze in someone with asthma is asthma (its own rules judge how bad), not
    // cardiac pain with breathlessness; sweating, radiation or a crushing pain still are.
    let asthma_tightness = f.has(&ASTHMA_KNOWN) && f.has(&WHEEZE);
    rule(
        Emergency,
        RedFlag::ChestPainWithDangerSigns,
        chest_pain
            && (f.has(&CARDIAC_DANGER)
                || breathing_severe
                || (breathing_difficulty && !asthma_tightness)
                || severe),
    );
    rule(Emergency, RedFlag::StrokeSigns, f.has(&STROKE));
    rule(
        Emergency,
        RedFlag::SevereBreathingDifficulty,
        breathing_severe || (breathing_difficulty && severe),
    );
    rule(
        Emergency,
        RedFlag::Anaphylaxis,
        f.has(&ANAPHYLAXIS) || (f.has(&ALLERGY) && (breathing_severe || breathing_difficulty)),
    );
    rule(Emergency, RedFlag::HeavyBleeding, f.has(&BLEEDING_HEAVY));
    rule(Emergency, RedFlag::LossOfConsciousness, f.has(&UNCONSCIOUS));
    let fainted = f.has(&FAINTED);
    let faint_danger = f.has(&FAINT_DANGER)
        || f.has(&CHEST_PAIN)
        || f.has(&PREGNANT)
        || f.has(&HEAD_INJURY)
        || f.has(&CONFUSION)
        || f.measured.age_years.is_some_and(|a| a >= 65.0);
    rule(
        Emergency,
        RedFlag::LossOfConsciousness,
        fainted && faint_danger,
    );
    rule(Urgent, RedFlag::Fainted, fainted);
    rule(Emergency, RedFlag::Seizure, f.has(&SEIZURE));
    rule(
        Emergency,
        RedFlag::SuicidalThoughtsOrSelfHarm,
        f.has(&SUICIDE) || f.has(&SUICIDE_PLAN),
    );
    // Heart attacks in older or diabetic people often come without chest pain: sweating or a grey
    // colour with jaw or arm pain, "indigestion", nausea or breathlessness (ESC 2023 NSTE-ACS).
    let cardiac_risk = f.has(&CARDIAC_RISK) || f.measured.age_years.is_some_and(|a| a >= 50.0);
    rule(
        Emergency,
        RedFlag::ChestPainWithDangerSigns,
        f.has(&SWEATY_OR_GREY) && f.has(&ANGINA_EQUIVALENT) && cardiac_risk,
    );
    rule(
        Emergency,
        RedFlag::CaudaEquinaSigns,
        f.has(&BACK_PAIN) && f.has(&CAUDA_EQUINA_SIGNS),
    );
    rule(
        Emergency,
        RedFlag::AcuteLimbIschaemia,
        f.has(&COLD_PALE_LIMB) && (f.has(&LIMB_DEFICIT) || f.has(&SUDDEN) || f.has(&SEVERE)),
    );
    let child =
        f.has(&CHILD_WORDS) || f.has(&INFANT) || f.measured.age_years.is_some_and(|a| a < 12.0);
    rule(
        Emergency,
        RedFlag::PregnancyBleedingOrSeverePain,
        (pregnant || f.has(&LATE_PERIOD))
            && abdominal_pain
            && (f.has(&SHOULDER_TIP)
                || (f.has(&DIZZY_OR_FAINT) && (f.has(&BLEEDING) || f.has(&LATE_PERIOD)))),
    );
    rule(
        Emergency,
        RedFlag::LossOfConsciousness,
        child && f.has(&FLOPPY_CHILD),
    );
    rule(
        Emergency,
        RedFlag::SevereBreathingDifficulty,
        f.has(&CHOKED_ON) && f.has(&COUGH_OR_NOISE),
    );
    rule(
        Emergency,
        RedFlag::OverdoseOrPoisoning,
        f.has(&OVERDOSE)
            || (f.has(&POISONED) && !f.has(&FOOD_POISONING))
            || f.texts.iter().any(|t| tablets_taken(&t.normalized) >= 10)
            || (f.has(&TABLET_WORDS) && f.texts.iter().any(|t| about_count(&t.normalized) >= 10))
            || (child && f.has(&CHILD_GOT_MEDICINE)),
    );
    rule(
        Emergency,
        RedFlag::SuddenSevereHeadache,
        f.has(&THUNDERCLAP) || (headache && f.has(&SUDDEN) && severe),
    );
    rule(Emergency, RedFlag::FeverInInfant, fever && young_infant);
    rule(
        Emergency,
        RedFlag::PregnancyBleedingOrSeverePain,
        pregnant && (f.has(&BLEEDING) || (severe && abdominal_pain)),
    );
    rule(
        Emergency,
        RedFlag::SevereAbdominalPain,
        abdominal_pain && severe,
    );
    rule(
        Emergency,
        RedFlag::MeningitisSigns,
        (fever && stiff_neck)
            || f.has(&NONBLANCHING_RASH)
            || (stiff_neck && headache && f.has(&PHOTOPHOBIA)),
    );

    rule(Urgent, RedFlag::ChestPain, chest_pain);
    rule(Urgent, RedFlag::BreathingDifficulty, breathing_difficulty);
    rule(Urgent, RedFlag::HighFever, high_fever);
    rule(
        Urgent,
        RedFlag::FeverLastingDays,
        fever && f.duration_days.is_some_and(|d| d >= 3.0),
    );
    rule(Urgent, RedFlag::FeverInInfant, fever && infant);
    rule(
        Urgent,
        RedFlag::BloodInUrineStoolOrSputum,
        f.has(&BLOOD_IN_OUTPUT),
    );
    rule(
        Urgent,
        RedFlag::PersistentVomitingOrDehydration,
        f.has(&VOMITING_PERSISTENT) || f.has(&DEHYDRATION),
    );
    // NICE NG232: a head injury on anticoagulants, or with vomiting since, needs a CT now.
    rule(
        Emergency,
        RedFlag::HeadInjury,
        f.has(&HEAD_INJURY) && (f.has(&BLOOD_THINNER) || f.has(&VOMITED)),
    );
    rule(Urgent, RedFlag::HeadInjury, f.has(&HEAD_INJURY));
    rule(Urgent, RedFlag::Confusion, f.has(&CONFUSION));
    rule(
        Urgent,
        RedFlag::PregnancyWarningSigns,
        pregnant && f.has(&PREGNANCY_WARNING),
    );
    rule(
        Urgent,
        RedFlag::SeverePain,
        severe && (pain || headache || abdominal_pain),
    );
    rule(Urgent, RedFlag::StiffNeck, stiff_neck);

    rule(Routine, RedFlag::SymptomsLastingWeeks, long_lasting);
    rule(Routine, RedFlag::LumpOrSwelling, f.has(&LUMP));
    rule(Routine, RedFlag::WeightLoss, f.has(&WEIGHT_LOSS));
    rule(Routine, RedFlag::AbdominalPain, abdominal_pain);
    rule(Routine, RedFlag::PregnancyQuestion, pregnant);
    rule(
        Routine,
        RedFlag::SymptomNeedingAssessment,
        f.has(&ROUTINE_SYMPTOMS),
    );

    vital_sign_rules(&f, &mut rule);

    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.dedup_by(|a, b| a.1 == b.1);
    found
}

/// Thresholds from NEWS2 (Royal College of Physicians 2017), qSOFA (Sepsis-3, JAMA 2016), the
/// ADA/JBDS definitions of hypoglycaemia and hyperglycaemic crises, and the ACC/AHA 2017
/// hypertensive-crisis definitions. The numbers are the same in any language.
fn vital_sign_rules(f: &Findings, rule: &mut impl FnMut(TriageLevel, RedFlag, bool)) {
    use TriageLevel::{Emergency, Urgent};
    let m = &f.measured;
    let age = m
        .age_years
        .or(f.infant_age_months.map(|months| months / 12.0));
    // A newborn or baby of unstated age breathes and beats at a baby's rates ("day-3 visit, term
    // baby, RR 42" is normal).
    let age = age.or_else(|| f.has(&BABY_OF_DAYS).then_some(0.1));
    let limits = VitalLimits::for_age(age, f.has(&CHILD_WORDS) && age.is_none());
    let spo2 = m.spo2;
    let hr = m.heart_rate;
    let rr = m.respiratory_rate;
    let sbp = m.systolic;
    let dbp = m.diastolic;
    let glucose = m.glucose_mmol;
    let temp = f.temperature_c.or(m.temperature_c);
    let altered = f.has(&CONFUSION) || f.has(&UNCONSCIOUS) || f.has(&DROWSY) || f.has(&SEIZURE);
    let fever = f.has(&FEVER) || temp.is_some_and(|t| t >= 38.0);
    let infection_signs = fever || temp.is_some_and(|t| t < 36.0) || f.has(&INFECTION);

    // People with COPD live at 88–92 % (BTS target range); below that is an emergency for them too.
    let copd = f.has(&COPD);
    let (hypoxic, low) = if copd { (88.0, 92.0) } else { (92.0, 95.0) };
    rule(
        Emergency,
        RedFlag::Hypoxia,
        spo2.is_some_and(|s| s < hypoxic),
    );
    rule(
        Urgent,
        RedFlag::LowOxygenSaturation,
        spo2.is_some_and(|s| s < low),
    );
    rule(
        Emergency,
        RedFlag::ShockSigns,
        sbp.is_some_and(|s| s < 90.0),
    );
    rule(
        Emergency,
        RedFlag::VeryFastHeartRate,
        hr.is_some_and(|h| h >= limits.hr_emergency),
    );
    rule(
        Urgent,
        RedFlag::FastHeartRate,
        hr.is_some_and(|h| h > limits.hr_urgent),
    );
    rule(
        Emergency,
        RedFlag::VerySlowHeartRate,
        hr.is_some_and(|h| h < limits.hr_slow),
    );
    rule(
        Emergency,
        RedFlag::VeryFastBreathing,
        rr.is_some_and(|r| r >= limits.rr_emergency || r <= 8.0),
    );
    rule(
        Urgent,
        RedFlag::FastBreathing,
        rr.is_some_and(|r| r >= limits.rr_urgent),
    );
    let qsofa = [
        rr.is_some_and(|r| r >= limits.rr_sepsis),
        sbp.is_some_and(|s| s <= 100.0),
        altered,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    rule(
        Emergency,
        RedFlag::SepsisSigns,
        infection_signs
            && (qsofa >= 2 || (qsofa >= 1 && hr.is_some_and(|h| h >= limits.hr_sepsis))),
    );
    rule(
        Emergency,
        RedFlag::SevereHypoglycaemia,
        glucose.is_some_and(|g| g < 3.0 || (g < 4.0 && altered)),
    );
    rule(
        Urgent,
        RedFlag::LowBloodSugar,
        glucose.is_some_and(|g| g < 4.0),
    );
    let crisis_symptoms = altered
        || f.has(&VOMITING_ANY)
        || f.has(&BREATHING_DIFFICULTY)
        || f.has(&ABDOMINAL_PAIN)
        || f.has(&BREATHING_SEVERE);
    rule(
        Emergency,
        RedFlag::HyperglycaemicCrisis,
        glucose.is_some_and(|g| g >= 30.0 || (g >= 14.0 && crisis_symptoms)),
    );
    rule(
        Urgent,
        RedFlag::HighBloodSugar,
        glucose.is_some_and(|g| g >= 20.0),
    );
    let very_high_bp = sbp.is_some_and(|s| s >= 180.0) || dbp.is_some_and(|d| d >= 120.0);
    let organ_symptoms = f.has(&CHEST_PAIN)
        || altered
        || f.has(&STROKE)
        || f.has(&BREATHING_DIFFICULTY)
        || f.has(&VISION_CHANGE)
        || (f.has(&HEADACHE) && f.has(&SEVERE));
    rule(
        Emergency,
        RedFlag::HypertensiveEmergency,
        very_high_bp && organ_symptoms,
    );
    rule(Urgent, RedFlag::VeryHighBloodPressure, very_high_bp);
    let pregnant = f.has(&PREGNANT) && !f.has(&UTERUS_SIZE);
    rule(
        Emergency,
        RedFlag::SeverePreEclampsiaSigns,
        pregnant
            && (sbp.is_some_and(|s| s >= 160.0)
                || dbp.is_some_and(|d| d >= 110.0)
                || ((sbp.is_some_and(|s| s >= 140.0) || dbp.is_some_and(|d| d >= 90.0))
                    && (f.has(&HEADACHE) || f.has(&VISION_CHANGE) || f.has(&PREGNANCY_WARNING)))),
    );
    rule(
        Urgent,
        RedFlag::PregnancyWarningSigns,
        pregnant && (sbp.is_some_and(|s| s >= 140.0) || dbp.is_some_and(|d| d >= 90.0)),
    );
    rule(
        Emergency,
        RedFlag::SevereHypothermia,
        temp.is_some_and(|t| t < 32.0 || (t < 35.0 && altered)),
    );
    rule(
        Urgent,
        RedFlag::LowBodyTemperature,
        temp.is_some_and(|t| t < 35.0),
    );
    rule(Urgent, RedFlag::HighFever, temp.is_some_and(|t| t >= 40.0));
}
/// Heart and breathing rates that are dangerous at an age: adult values from NEWS2, children's
/// from the APLS normal ranges (a heart rate of 150 is an emergency at 40 and normal at 1).
struct VitalLimits {
    hr_emergency: f32,
    hr_urgent: f32,
    hr_slow: f32,
    hr_sepsis: f32,
    rr_emergency: f32,
    rr_urgent: f32,
    rr_sepsis: f32,
}

impl VitalLimits {
    fn for_age(age_years: Option<f32>, child_without_age: bool) -> Self {
        let limits = |hr_emergency, hr_urgent, hr_slow, rr_emergency, rr_urgent| VitalLimits {
            hr_emergency,
            hr_urgent,
            hr_slow,
            hr_sepsis: hr_urgent,
            rr_emergency,
            rr_urgent,
            rr_sepsis: rr_urgent,
        };
        match age_years {
            Some(a) if a < 1.0 => limits(180.0, 160.0, 100.0, 60.0, 50.0),
            Some(a) if a < 5.0 => limits(160.0, 140.0, 70.0, 40.0, 35.0),
            Some(a) if a < 12.0 => limits(140.0, 120.0, 60.0, 30.0, 25.0),
            // A child of unknown age: the infant limits would miss a toddler's danger less
            // often than the adult ones would raise false alarms.
            None if child_without_age => limits(160.0, 140.0, 70.0, 40.0, 35.0),
            _ => VitalLimits {
                hr_emergency: 130.0,
                hr_urgent: 110.0,
                hr_slow: 40.0,
                hr_sepsis: 120.0,
                rr_emergency: 30.0,
                rr_urgent: 22.0,
                rr_sepsis: 22.0,
            },
        }
    }
}

static TABLETS_TAKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:took|taken|swallowed|ate|had|吃了|吞了|服了|服用了)\s*(?:about|around|over|maybe|like|approximately|approx|roughly|nearly|almost|up to|约|大概|差不多|将近|[^\d\s]{1,6}?)?\s*(\d{1,3})\s*多?\s*(?:x\s*\d+\s*(?:mg|g)\s*)?(?:of\s*(?:his|her|my|the|their)\s*)?(?:\w+\s*)?(?:tablets?|pills?|caps(?:ules)?|tabs?|片|粒|\d+\s*mg)")
        .expect("valid regex")
});

static ABOUT_COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:took|taken|swallowed|had|吃了|吞了|服了)\s*(?:about|around|over|maybe|like|roughly|约|大概|差不多)\s*(\d{1,3})\b")
        .expect("valid regex")
});

/// A count given with "about" after a verb of taking ("she's had about 15"), for when the tablets
/// were named in another sentence.
fn about_count(normalized: &str) -> u32 {
    ABOUT_COUNT
        .captures_iter(normalized)
        .filter_map(|c| c[1].parse().ok())
        .max()
        .unwrap_or(0)
}

/// The number of tablets someone says were taken at once ("took 32 x 500 mg paracetamol tablets").
fn tablets_taken(normalized: &str) -> u32 {
    TABLETS_TAKEN
        .captures_iter(normalized)
        // The whole number: "took 400mg ibuprofen" is one dose, not 40 tablets.
        .filter(|c| {
            let end = c.get(1).map_or(0, |m| m.end());
            !normalized[end..].starts_with(|ch: char| ch.is_ascii_digit())
        })
        .filter_map(|c| c[1].parse().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flags {
        level: TriageLevel,
        reasons: Vec<&'static str>,
    }

    fn assess(text: &str) -> Flags {
        let found = red_flags(&[text]);
        let level = found.first().map_or(TriageLevel::SelfCare, |(l, _)| *l);
        Flags {
            level,
            reasons: found
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, r)| r.as_str())
                .collect(),
        }
    }

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

    /// Emergencies written as people write them, not as the rules were first phrased.
    #[test]
    fn emergencies_in_other_peoples_words() {
        let topic = |messages: &[&str]| {
            red_flags(messages)
                .first()
                .map_or(TriageLevel::SelfCare, |(l, _)| *l)
        };
        for messages in [
            &[
                "ive been saving my tablets up for a few weeks and i think tonight is the night. ive written letters for my kids",
            ][..],
            &[
                "3 weeks of low back pain down both legs, now he cannot feel the toilet paper when wiping and strains to pass urine",
            ],
            &["我爸早上滑了一跤，后脑勺磕在瓷砖上", "他80了，一直吃华法林"],
            &["he banged his head on the cupboard and has vomited twice since"],
            &["我家小孙子3岁，把奶奶的降糖药翻出来了，少了大概3片"],
            &["my toddler got into the dishwasher tablets"],
            &[
                "my mate has taken some of her mums tablets after a row",
                "box says amitriptyline, shes had about 15 i think",
            ],
            &["took approximately 40 x 500 mg paracetamol tablets with vodka"],
            &["她把我的艾司唑仑吃了大半瓶，大概20多片"],
            &[
                "my period is 2 weeks late and ive got tummy pain",
                "test is positive, pain low on the right and now pain in the tip of my shoulder, dizzy",
            ],
            &["my 10 month old keeps screaming, in between hes pale and floppy"],
            &[
                "宝宝两岁，咳嗽像小狗叫",
                "安静的时候吸气也有声音，肋骨那里一吸气就凹进去，嘴唇有点发青",
            ],
            &[
                "his words started coming out all jumbled and his tea dribbled out the side of his mouth",
            ],
            &["我奶奶刚才突然嘴巴歪到一边，说话含含糊糊，右手筷子都拿不住"],
            &[
                "she choked on a grape an hour ago, now breathing ok but keeps coughing and whistles when breathing out",
            ],
        ] {
            assert_eq!(topic(messages), TriageLevel::Emergency, "{messages:?}");
        }
    }

    #[test]
    fn asthma_tightness_is_not_cardiac_and_fewer_wet_nappies_is_dehydration() {
        let a = assess(
            "known asthmatic, wheeze and chest tightness since a cold, salbutamol helps a bit",
        );
        assert_ne!(a.level, TriageLevel::Emergency, "{:?}", a.reasons);
        let a = assess("known asthmatic, chest tightness spreading to my left arm and sweating");
        assert_eq!(a.level, TriageLevel::Emergency, "{:?}", a.reasons);
        let a = assess("my 18 month old has had the runs for 3 days, only 2 wet nappies today");
        assert!(
            a.reasons.contains(&"persistent_vomiting_or_dehydration"),
            "{:?}",
            a.reasons
        );
    }

    /// Words that look like red flags and are not: food poisoning, one 400 mg dose, a positive
    /// COVID antigen test (两道杠) with a pulse oximeter (血氧), a denied thought in Chinese.
    #[test]
    fn look_alikes_are_not_red_flags() {
        for text in [
            "think i have food poisoning, runny poo 5 times, keeping water down",
            "kidney stone pain, took 400mg ibuprofen an hour ago and its a bit better",
            "昨天开始嗓子疼，今天抗原测了两道杠，体温37.8度，血氧仪测的98",
            "这半年总是担心各种事情，睡不着。没有想过伤害自己。",
            "Community midwife day-3 visit. Term baby boy, feeding well. T 36.9, HR 138, RR 42.",
            "stabbing pain next to my breastbone after moving a wardrobe, hurts when i press on it, no pain in my arm or jaw, not out of breath",
            "腰痛伴左下肢放射痛3周，无大小便障碍，无鞍区麻木。查体：鞍区感觉正常，肛门括约肌功能正常。",
            "妇科门诊：女，42岁，月经量增多1年，有血块。查体：子宫增大如孕10周。",
            "我怀孕八周了，吐得厉害，站起来头晕。没有肚子疼，也没见红",
        ] {
            let a = assess(text);
            assert_ne!(a.level, TriageLevel::Emergency, "{text}: {:?}", a.reasons);
        }
    }

    #[test]
    fn a_denial_of_thoughts_covers_the_rest_of_the_clause() {
        for text in [
            "Asked directly: denies any thoughts of self-harm or suicide, no previous attempts",
            "im not having any thoughts of hurting myself or the baby",
            "no intention of acting on it and no thoughts of ending my life",
        ] {
            let a = assess(text);
            assert!(
                !a.reasons.contains(&"suicidal_thoughts_or_self_harm"),
                "{text}: {:?}",
                a.reasons
            );
        }
        // A denial of something else does not reach a stated wish to die.
        let a = assess("no one knows i have thoughts of killing myself");
        assert_eq!(a.level, TriageLevel::Emergency, "{:?}", a.reasons);
    }

    #[test]
    fn negated_red_flags_do_not_fire() {
        let a = assess("No chest pain, no shortness of breath, just a runny nose");
        assert_eq!(a.level, TriageLevel::SelfCare, "{:?}", a.reasons);
        assert_eq!(
            assess("没有胸痛，也没有发烧，就是有点咳嗽").level,
            TriageLevel::SelfCare
        );
    }

    #[test]
    fn a_two_message_emergency_is_one_on_the_second_message() {
        let first = red_flags(&["I have chest pain"]);
        assert_eq!(first[0], (TriageLevel::Urgent, RedFlag::ChestPain));
        let both = red_flags(&[
            "I have chest pain",
            "now it goes to my left arm and I am sweating",
        ]);
        assert_eq!(
            both[0],
            (TriageLevel::Emergency, RedFlag::ChestPainWithDangerSigns)
        );
        let withdrawn = red_flags(&["chest pain", "sorry, no chest pain, it is my shoulder"]);
        assert!(
            withdrawn.iter().all(|(_, f)| *f != RedFlag::ChestPain),
            "{withdrawn:?}"
        );
    }

    #[test]
    fn vital_signs_alone_can_make_an_emergency() {
        for (text, flag) in [
            (
                "cough and fever, my oxygen saturation is 88%",
                RedFlag::Hypoxia,
            ),
            (
                "fever 39.5, heart rate 130, blood pressure 85/50",
                RedFlag::ShockSigns,
            ),
            (
                "my blood sugar is 32 mmol/L and I feel very drowsy",
                RedFlag::HyperglycaemicCrisis,
            ),
            ("血糖2.1，出冷汗，有点糊涂", RedFlag::SevereHypoglycaemia),
            (
                "I took about 24 paracetamol 500mg 3 hours ago",
                RedFlag::OverdoseOrPoisoning,
            ),
            ("T 38.9, RR 26, BP 98/60, confused", RedFlag::SepsisSigns),
        ] {
            let found = red_flags(&[text]);
            assert!(
                found.contains(&(TriageLevel::Emergency, flag)),
                "{text}: {found:?}"
            );
        }
        let calm = red_flags(&["BP 128/82, HR 72, SpO2 98%, temp 36.8"]);
        assert!(calm.is_empty(), "{calm:?}");
    }

    #[test]
    fn numbers_are_read() {
        let f = Findings::of("my baby is 7 weeks old, temp 101.5F");
        assert!(f.measured.age_years.unwrap() < 0.2);
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
        assert!(assess("what is vitamin D for?").reasons.is_empty());
    }
}
