//! The medicine knowledge: drug classes, drugs (English and Chinese names, brands, ATC codes),
//! interaction rules between drugs or classes, and allergy cross-reactivity, from the TOML files in
//! data/medicines (described in data/README.md). Everything is checked on load: a rule never names
//! a drug or class that does not exist, and two entries never claim the same name.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::names::normalise;
use crate::assessment::KnowledgeError;

/// How bad an interaction is, mildest first (so `max` is the worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Moderate,
    Major,
    Contraindicated,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Moderate => "moderate",
            Severity::Major => "major",
            Severity::Contraindicated => "contraindicated",
        }
    }
}

/// A drug or a class, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agent {
    Drug(usize),
    Class(usize),
}

#[derive(Debug)]
pub struct DrugClass {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    /// Every broader class, transitively (not including itself).
    pub ancestors: Vec<usize>,
    pub source: String,
}

#[derive(Debug)]
pub struct Drug {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    /// Every class the drug belongs to, with their broader classes.
    pub classes: Vec<usize>,
    pub atc: String,
    pub source: String,
}

#[derive(Debug)]
pub struct InteractionRule {
    pub a: Agent,
    pub b: Agent,
    pub severity: Severity,
    pub mechanism: String,
    pub advice: String,
    pub source: String,
}

#[derive(Debug)]
pub struct AllergyRule {
    pub allergen: Agent,
    pub conflicts: Vec<Agent>,
    pub cross_reactive: Vec<Agent>,
    pub advice: String,
    pub source: String,
}

/// Every drug, class, interaction and allergy rule medbot knows, checked.
#[derive(Debug, Default)]
pub struct MedicineKnowledge {
    pub classes: Vec<DrugClass>,
    pub drugs: Vec<Drug>,
    pub interactions: Vec<InteractionRule>,
    pub allergies: Vec<AllergyRule>,
    /// Normalised English names (and ids), to what they name.
    pub(super) by_name: HashMap<String, Agent>,
    /// Chinese names, longest first.
    pub(super) chinese: Vec<(String, Agent)>,
    by_id: HashMap<String, Agent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MedicinesFile {
    #[serde(default)]
    class: Vec<ClassEntry>,
    #[serde(default)]
    drug: Vec<DrugEntry>,
    #[serde(default)]
    interaction: Vec<InteractionEntry>,
    #[serde(default)]
    allergy: Vec<AllergyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    id: String,
    name: String,
    name_zh: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    names_zh: Vec<String>,
    #[serde(default)]
    atc: Option<String>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrugEntry {
    id: String,
    name: String,
    name_zh: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    names_zh: Vec<String>,
    #[serde(default)]
    classes: Vec<String>,
    atc: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InteractionEntry {
    a: String,
    b: String,
    severity: Severity,
    mechanism: String,
    advice: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllergyEntry {
    allergen: String,
    #[serde(default)]
    conflicts: Vec<String>,
    #[serde(default)]
    cross_reactive: Vec<String>,
    advice: String,
    source: String,
}

static ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*$").expect("regex"));
static ATC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$").expect("regex"));

fn error(file: &str, field: impl Into<String>, message: impl Into<String>) -> KnowledgeError {
    KnowledgeError {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// Where each name was defined, to report a clash with both places.
struct NameBook<'a> {
    english: HashMap<String, (Agent, String)>,
    chinese: BTreeMap<String, (Agent, String)>,
    knowledge: &'a MedicineKnowledge,
}

impl NameBook<'_> {
    fn describe(&self, agent: Agent) -> String {
        match agent {
            Agent::Drug(i) => format!("drug {:?}", self.knowledge.drugs[i].id),
            Agent::Class(i) => format!("class {:?}", self.knowledge.classes[i].id),
        }
    }

    fn add(
        &mut self,
        file: &str,
        field: &str,
        name: &str,
        agent: Agent,
    ) -> Result<(), KnowledgeError> {
        if name.chars().any(crate::domain::is_han) {
            let name = name.trim().to_owned();
            return match self.chinese.get(&name) {
                Some((other, _)) if *other != agent => Err(error(
                    file,
                    field,
                    format!("name {name:?} is also {}", self.describe(*other)),
                )),
                Some(_) => Ok(()),
                None => {
                    self.chinese.insert(name, (agent, field.to_owned()));
                    Ok(())
                }
            };
        }
        let key = normalise(name);
        if key.is_empty() {
            return Err(error(file, field, "empty name"));
        }
        match self.english.get(&key) {
            Some((other, _)) if *other != agent => Err(error(
                file,
                field,
                format!("name {key:?} is also {}", self.describe(*other)),
            )),
            Some(_) => Ok(()),
            None => {
                self.english.insert(key, (agent, field.to_owned()));
                Ok(())
            }
        }
    }
}

fn required(file: &str, field: String, value: &str) -> Result<(), KnowledgeError> {
    if value.trim().is_empty() {
        return Err(error(file, field, "is required"));
    }
    Ok(())
}

impl MedicineKnowledge {
    /// Builds the knowledge from (path, contents) pairs, every file holding any of `[[class]]`,
    /// `[[drug]]`, `[[interaction]]` and `[[allergy]]`.
    ///
    /// # Errors
    /// A [`KnowledgeError`] naming the first file and field that is wrong.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, KnowledgeError> {
        let mut parsed = Vec::new();
        for (path, text) in files {
            let file: MedicinesFile = toml::from_str(&text)
                .map_err(|e| crate::assessment::knowledge::toml_error(&path, &text, &e))?;
            parsed.push((path, file));
        }
        let mut knowledge = Self::default();

        // Classes first (any file may name a class defined in another), then their parents.
        for (path, file) in &parsed {
            for entry in &file.class {
                let field = |name: &str| format!("class {:?} {name}", entry.id);
                if !ID.is_match(&entry.id) {
                    return Err(error(path, field("id"), "must be snake_case (a-z, 0-9, _)"));
                }
                if knowledge.by_id.contains_key(&entry.id) {
                    return Err(error(path, field("id"), "defined twice"));
                }
                required(path, field("name"), &entry.name)?;
                required(path, field("name_zh"), &entry.name_zh)?;
                required(path, field("source"), &entry.source)?;
                if let Some(atc) = &entry.atc
                    && !ATC.is_match(atc)
                {
                    return Err(error(
                        path,
                        field("atc"),
                        format!("{atc:?} is not an ATC code"),
                    ));
                }
                knowledge
                    .by_id
                    .insert(entry.id.clone(), Agent::Class(knowledge.classes.len()));
                knowledge.classes.push(DrugClass {
                    id: entry.id.clone(),
                    name: entry.name.clone(),
                    name_zh: entry.name_zh.clone(),
                    ancestors: Vec::new(),
                    source: entry.source.clone(),
                });
            }
        }
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); knowledge.classes.len()];
        for (path, file) in &parsed {
            for entry in &file.class {
                let Some(Agent::Class(index)) = knowledge.by_id.get(&entry.id).copied() else {
                    continue;
                };
                for parent in &entry.parents {
                    match knowledge.by_id.get(parent) {
                        Some(Agent::Class(p)) if *p != index => parents[index].push(*p),
                        _ => {
                            return Err(error(
                                path,
                                format!("class {:?} parents", entry.id),
                                format!("{parent:?} is not another class"),
                            ));
                        }
                    }
                }
            }
        }
        for index in 0..knowledge.classes.len() {
            let mut seen = Vec::new();
            let mut stack = parents[index].clone();
            while let Some(next) = stack.pop() {
                if next == index {
                    return Err(error(
                        "medicines",
                        format!("class {:?} parents", knowledge.classes[index].id),
                        "the class is its own ancestor",
                    ));
                }
                if !seen.contains(&next) {
                    seen.push(next);
                    stack.extend(&parents[next]);
                }
            }
            seen.sort_unstable();
            knowledge.classes[index].ancestors = seen;
        }

        for (path, file) in &parsed {
            for entry in &file.drug {
                let field = |name: &str| format!("drug {:?} {name}", entry.id);
                if !ID.is_match(&entry.id) {
                    return Err(error(path, field("id"), "must be snake_case (a-z, 0-9, _)"));
                }
                if knowledge.by_id.contains_key(&entry.id) {
                    return Err(error(
                        path,
                        field("id"),
                        "defined twice (as a drug or a class)",
                    ));
                }
                required(path, field("name"), &entry.name)?;
                required(path, field("name_zh"), &entry.name_zh)?;
                required(path, field("source"), &entry.source)?;
                if !entry.name_zh.chars().any(crate::domain::is_han) {
                    return Err(error(path, field("name_zh"), "must be Chinese"));
                }
                if !ATC.is_match(&entry.atc) {
                    return Err(error(
                        path,
                        field("atc"),
                        format!("{:?} is not an ATC code", entry.atc),
                    ));
                }
                let mut classes = Vec::new();
                for class in &entry.classes {
                    let Some(Agent::Class(c)) = knowledge.by_id.get(class).copied() else {
                        return Err(error(
                            path,
                            field("classes"),
                            format!("{class:?} is not a class"),
                        ));
                    };
                    classes.push(c);
                    classes.extend(&knowledge.classes[c].ancestors);
                }
                classes.sort_unstable();
                classes.dedup();
                knowledge
                    .by_id
                    .insert(entry.id.clone(), Agent::Drug(knowledge.drugs.len()));
                knowledge.drugs.push(Drug {
                    id: entry.id.clone(),
                    name: entry.name.clone(),
                    name_zh: entry.name_zh.clone(),
                    classes,
                    atc: entry.atc.clone(),
                    source: entry.source.clone(),
                });
            }
        }

        let mut book = NameBook {
            english: HashMap::new(),
            chinese: BTreeMap::new(),
            knowledge: &knowledge,
        };
        for (path, file) in &parsed {
            for entry in &file.class {
                let agent = knowledge.by_id[&entry.id];
                let field = format!("class {:?} names", entry.id);
                book.add(path, &field, &entry.id.replace('_', " "), agent)?;
                for name in entry.names.iter().chain(&entry.names_zh) {
                    book.add(path, &field, name, agent)?;
                }
                book.add(path, &field, &entry.name_zh, agent)?;
            }
            for entry in &file.drug {
                let agent = knowledge.by_id[&entry.id];
                let field = format!("drug {:?} names", entry.id);
                book.add(path, &field, &entry.id.replace('_', " "), agent)?;
                book.add(path, &field, &entry.name, agent)?;
                book.add(path, &field, &entry.name_zh, agent)?;
                for name in entry.names.iter().chain(&entry.names_zh) {
                    book.add(path, &field, name, agent)?;
                }
            }
        }
        let by_name: HashMap<String, Agent> = book
            .english
            .into_iter()
            .map(|(name, (agent, _))| (name, agent))
            .collect();
        let mut chinese: Vec<(String, Agent)> = book
            .chinese
            .into_iter()
            .map(|(name, (agent, _))| (name, agent))
            .collect();
        chinese.sort_by_key(|(name, _)| std::cmp::Reverse(name.chars().count()));
        knowledge.by_name = by_name;
        knowledge.chinese = chinese;

        let mut pairs: HashMap<(Agent, Agent), String> = HashMap::new();
        for (path, file) in &parsed {
            for (n, entry) in file.interaction.iter().enumerate() {
                let field = |name: &str| {
                    format!("interaction {} ({} + {}) {name}", n + 1, entry.a, entry.b)
                };
                let a = knowledge.agent(path, &field("a"), &entry.a)?;
                let b = knowledge.agent(path, &field("b"), &entry.b)?;
                if a == b && matches!(a, Agent::Drug(_)) {
                    return Err(error(
                        path,
                        field("b"),
                        "a drug does not interact with itself",
                    ));
                }
                required(path, field("mechanism"), &entry.mechanism)?;
                required(path, field("advice"), &entry.advice)?;
                required(path, field("source"), &entry.source)?;
                let key = (a.min(b), a.max(b));
                if let Some(first) = pairs.get(&key) {
                    return Err(error(
                        path,
                        field("a"),
                        format!("the same pair has a rule already (in {first})"),
                    ));
                }
                pairs.insert(key, path.clone());
                knowledge.interactions.push(InteractionRule {
                    a,
                    b,
                    severity: entry.severity,
                    mechanism: entry.mechanism.trim().to_owned(),
                    advice: entry.advice.trim().to_owned(),
                    source: entry.source.trim().to_owned(),
                });
            }
            for entry in &file.allergy {
                let field = |name: &str| format!("allergy {:?} {name}", entry.allergen);
                let allergen = knowledge.agent(path, &field("allergen"), &entry.allergen)?;
                let agents = |ids: &[String], name: &str| -> Result<Vec<Agent>, KnowledgeError> {
                    ids.iter()
                        .map(|id| knowledge.agent(path, &field(name), id))
                        .collect()
                };
                let conflicts = agents(&entry.conflicts, "conflicts")?;
                let cross_reactive = agents(&entry.cross_reactive, "cross_reactive")?;
                required(path, field("advice"), &entry.advice)?;
                required(path, field("source"), &entry.source)?;
                if knowledge.allergies.iter().any(|r| r.allergen == allergen) {
                    return Err(error(path, field("allergen"), "has a rule already"));
                }
                knowledge.allergies.push(AllergyRule {
                    allergen,
                    conflicts,
                    cross_reactive,
                    advice: entry.advice.trim().to_owned(),
                    source: entry.source.trim().to_owned(),
                });
            }
        }
        Ok(knowledge)
    }

    fn agent(&self, file: &str, field: &str, id: &str) -> Result<Agent, KnowledgeError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| error(file, field, format!("{id:?} is neither a drug nor a class")))
    }

    /// The drug or class with this id.
    pub fn by_id(&self, id: &str) -> Option<Agent> {
        self.by_id.get(id).copied()
    }

    pub fn id_of(&self, agent: Agent) -> &str {
        match agent {
            Agent::Drug(i) => &self.drugs[i].id,
            Agent::Class(i) => &self.classes[i].id,
        }
    }

    /// The English name doctors read.
    pub fn name_of(&self, agent: Agent) -> &str {
        match agent {
            Agent::Drug(i) => &self.drugs[i].name,
            Agent::Class(i) => &self.classes[i].name,
        }
    }

    pub fn name_zh_of(&self, agent: Agent) -> &str {
        match agent {
            Agent::Drug(i) => &self.drugs[i].name_zh,
            Agent::Class(i) => &self.classes[i].name_zh,
        }
    }

    /// Whether what a rule names (`rule`) takes in what a patient takes or is named (`item`): the
    /// same drug or class, a drug of the class, or a narrower class. A class named by a patient
    /// ("blood thinners") is not taken to be any one drug.
    pub fn covers(&self, rule: Agent, item: Agent) -> bool {
        match (rule, item) {
            (r, i) if r == i => true,
            (Agent::Class(c), Agent::Drug(d)) => self.drugs[d].classes.contains(&c),
            (Agent::Class(c), Agent::Class(k)) => self.classes[k].ancestors.contains(&c),
            _ => false,
        }
    }

    /// How narrowly a rule names what it covers: a drug is narrowest, then classes by how many
    /// broader classes they sit under. Among rules of the same severity the narrowest is reported.
    pub(super) fn specificity(&self, rule: Agent) -> usize {
        match rule {
            Agent::Drug(_) => usize::MAX,
            Agent::Class(c) => self.classes[c].ancestors.len(),
        }
    }
}
