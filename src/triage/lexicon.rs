//! The drug lexicon the draft review uses to notice a medicine: the ~107,000 names and brand names of
//! ~20,000 drugs from the `drug-named-entity-recognition` package (fetched by
//! `models/fetch-drug-lexicon`), plus medicine classes and common Chinese drug names, which that
//! English-only list lacks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use super::text::is_han;

/// Entries in the package's list that are ordinary words, molecules of the body or household things
/// rather than medicines a draft could recommend (found by intersecting the list with the words of a
/// general English vocabulary). Flagging them would send harmless answers to doctors.
#[rustfmt::skip]
const NOT_MEDICINES: &[&str] = &[
    "admon", "armour", "aspart", "buffers", "caps", "carcinogens", "ches", "chrom", "cloves",
    "diamonds", "eisen", "epigen", "fertilizers", "flavon", "flavonoids", "hops", "indicators",
    "mirna", "mirnas", "mrna", "oats", "oregano", "prepar", "progen", "reagents", "sensit", "sits",
    "sugarcane", "ukrain", "vals", "yeasts", "antibodies", "cortisol", "dopamine", "endorphins",
    "histamine", "leptin", "serotonin", "glutamate", "neurotransmitter", "neurotransmitters",
    "sunscreen", "sunscreens", "aloe", "sulfur", "water", "oxygen", "alcohol", "caffeine", "salt",
    "sugar", "honey", "glucose", "ethanol", "carbon dioxide", "nitrogen", "fluoride", "chamomile",
    "peppermint", "ginger", "lemon", "garlic", "cinnamon", "coffee", "polyphenols", "herbicides",
    "insecticides", "glyphosate", "nitrates", "sulfate", "bicarbonate", "curcumin", "gaba",
];

/// Medicine classes a draft may name without naming a product; each still means medication advice.
#[rustfmt::skip]
const MEDICINE_CLASSES: &[&str] = &[
    "painkiller", "painkillers", "pain reliever", "pain relievers", "pain relief medication",
    "antibiotic", "antibiotics", "antihistamine", "antihistamines", "antacid", "antacids",
    "decongestant", "decongestants", "cough syrup", "cough medicine", "nsaid", "nsaids",
    "anti-inflammatory", "anti-inflammatories", "antiviral", "antivirals", "steroid", "steroids",
    "corticosteroid", "antidepressant", "antidepressants", "sedative", "sleeping pills",
    "blood thinner", "blood thinners", "laxative", "laxatives", "inhaler", "opioid", "opioids",
    "antifungal", "antibiotic cream", "hydrocortisone", "fever reducer", "fever reducers",
];

/// Common drug names in Chinese (generic and widely known brands).
#[rustfmt::skip]
const CHINESE_DRUG_NAMES: &[&str] = &[
    "布洛芬", "对乙酰氨基酚", "扑热息痛", "泰诺", "芬必得", "阿司匹林", "阿莫西林", "头孢", "青霉素",
    "左氧氟沙星", "阿奇霉素", "甲硝唑", "二甲双胍", "胰岛素", "硝酸甘油", "氯雷他定", "西替利嗪",
    "奥美拉唑", "雷尼替丁", "蒙脱石散", "地塞米松", "泼尼松", "氢化可的松", "氨氯地平", "硝苯地平",
    "美托洛尔", "卡托普利", "缬沙坦", "阿托伐他汀", "华法林", "氯吡格雷", "地西泮", "安定", "艾司唑仑",
    "舍曲林", "氟西汀", "帕罗西汀", "奥司他韦", "达菲", "连花清瘟", "板蓝根", "感冒灵", "止痛药",
    "退烧药", "消炎药", "抗生素", "安眠药", "抗病毒药", "激素", "维生素", "速效救心丸", "藿香正气",
    "降压药", "降糖药", "止咳糖浆", "抗过敏药", "吗丁啉", "多潘立酮", "沙丁胺醇", "万托林", "碘伏",
];

/// The variant → generic table beside the lexicon, as plain JSON.
const GENERICS_FILE: &str = "drug-generics.json";

/// Why the lexicon file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("the drug lexicon {path} does not exist; run models/fetch-drug-lexicon")]
    NotFound { path: PathBuf },
    #[error("could not read the drug lexicon {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not the drug-named-entity-recognition dictionary: {problem}")]
    Format { path: PathBuf, problem: String },
}

/// Drug names, normalised, matched by whole words (Latin script) or by characters (Chinese).
#[derive(Debug, Clone)]
pub struct DrugLexicon {
    names: HashSet<String>,
    /// Each variant (brand, spelling), normalised as `medicines::normalise` does, to the generic
    /// names it stands for ("coumadin" → warfarin), where they differ from the variant itself.
    canonical: HashMap<String, Vec<String>>,
    chinese: Vec<&'static str>,
    longest: usize,
}

impl DrugLexicon {
    /// Reads the package's dictionary (a pickle of plain dicts).
    ///
    /// # Errors
    /// A missing or unreadable file, or one without the `drug_variant_to_canonical` table.
    pub fn load(path: &Path) -> Result<Self, LexiconError> {
        let bytes = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LexiconError::NotFound {
                path: path.to_owned(),
            },
            _ => LexiconError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        let format = |problem: String| LexiconError::Format {
            path: path.to_owned(),
            problem,
        };
        // The pickle shares list objects between entries (memo references) in ways serde-pickle's
        // reference counting reads as recursion. Only the table's keys are used, so shared values
        // may become None.
        let options = DeOptions::new().replace_recursive_structures();
        let value =
            serde_pickle::value_from_slice(&bytes, options).map_err(|e| format(e.to_string()))?;
        let Value::Dict(tables) = value else {
            return Err(format("the top level is not a dict".into()));
        };
        let variants = tables
            .get(&HashableValue::String("drug_variant_to_canonical".into()))
            .ok_or_else(|| format("no drug_variant_to_canonical table".into()))?;
        let Value::Dict(variants) = variants else {
            return Err(format("drug_variant_to_canonical is not a dict".into()));
        };
        let names = variants.keys().filter_map(|key| match key {
            HashableValue::String(name) => Some(name.as_str()),
            _ => None,
        });
        let mut lexicon = Self::from_names(names);
        // The variant → generic table as plain JSON (written by models/fetch-drug-lexicon) when it
        // is there: the pickle's shared lists read back as None for about 1,000 variants.
        let plain = path.with_file_name(GENERICS_FILE);
        let table: Vec<(String, Vec<String>)> = match std::fs::read(&plain) {
            Ok(bytes) => serde_json::from_slice::<HashMap<String, Vec<String>>>(&bytes)
                .map_err(|e| LexiconError::Format {
                    path: plain.clone(),
                    problem: e.to_string(),
                })?
                .into_iter()
                .collect(),
            Err(_) => {
                tracing::warn!(
                    file = %plain.display(),
                    "no plain generic-name table; some brand names may not map to their generic (run models/fetch-drug-lexicon)"
                );
                variants
                    .iter()
                    .filter_map(|(key, value)| match (key, value) {
                        (HashableValue::String(variant), Value::List(generics)) => Some((
                            variant.clone(),
                            generics
                                .iter()
                                .filter_map(|g| match g {
                                    Value::String(g) => Some(g.clone()),
                                    _ => None,
                                })
                                .collect(),
                        )),
                        _ => None,
                    })
                    .collect()
            }
        };
        lexicon.canonical = lexicon.generics_of(table);
        if lexicon.names.len() < 1000 {
            return Err(format(format!(
                "only {} names; expected about 100,000",
                lexicon.names.len()
            )));
        }
        Ok(lexicon)
    }

    /// The table kept: variants that count as medicine names here (not "salt", not three-letter
    /// codes), keyed as `medicines::normalise` keys them, with the generics that differ from them.
    fn generics_of(
        &self,
        table: impl IntoIterator<Item = (String, Vec<String>)>,
    ) -> HashMap<String, Vec<String>> {
        table
            .into_iter()
            .filter(|(variant, _)| self.names.contains(&normalise(variant)))
            .filter_map(|(variant, generics)| {
                let generics: Vec<String> = generics
                    .into_iter()
                    .filter(|g| !g.eq_ignore_ascii_case(&variant))
                    .collect();
                (!generics.is_empty()).then(|| (crate::medicines::normalise(&variant), generics))
            })
            .collect()
    }

    /// A lexicon of the given names (and the built-in classes and Chinese names).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = HashSet::new();
        for name in names.into_iter().chain(MEDICINE_CLASSES.iter().copied()) {
            let words = normalise(name);
            let single_short = !words.contains(' ') && words.chars().count() < 5;
            if words.is_empty()
                || single_short
                || !words.chars().any(char::is_alphabetic)
                || NOT_MEDICINES.contains(&words.as_str())
            {
                continue;
            }
            set.insert(words);
        }
        let longest = set
            .iter()
            .map(|n| n.split(' ').count())
            .max()
            .unwrap_or(1)
            .min(6);
        Self {
            names: set,
            canonical: HashMap::new(),
            chinese: CHINESE_DRUG_NAMES.to_vec(),
            longest,
        }
    }

    /// As [`DrugLexicon::from_names`], with variants mapped to their generic names.
    pub fn with_variants<'a>(
        mut self,
        variants: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        for (variant, generic) in variants {
            self.canonical
                .entry(crate::medicines::normalise(variant))
                .or_default()
                .push(generic.to_owned());
        }
        self
    }

    /// The generic names a variant (normalised) stands for; empty when it is one itself or unknown.
    pub fn canonical_names(&self, variant: &str) -> &[String] {
        self.canonical.get(variant).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.names.len() + self.chinese.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The drug names found in `text`, longest match first at each position.
    pub fn find_in(&self, text: &str) -> Vec<String> {
        let lowered = normalise(text);
        let words: Vec<&str> = lowered.split(' ').filter(|w| !w.is_empty()).collect();
        let mut found = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let longest_here = (1..=self.longest.min(words.len() - i))
                .rev()
                .find(|&n| self.names.contains(&words[i..i + n].join(" ")));
            match longest_here {
                Some(n) => {
                    found.push(words[i..i + n].join(" "));
                    i += n;
                }
                None => i += 1,
            }
        }
        if text.chars().any(is_han) {
            found.extend(
                self.chinese
                    .iter()
                    .filter(|name| text.contains(*name))
                    .map(|name| (*name).to_owned()),
            );
        }
        found
    }
}

/// Lower case, with punctuation other than hyphens turned into single spaces.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_names_and_phrases_only() {
        let lexicon =
            DrugLexicon::from_names(["Ibuprofen", "vitamin d", "Tylenol", "oats", "apap"]);
        assert_eq!(
            lexicon.find_in("Take ibuprofen, or TYLENOL."),
            ["ibuprofen", "tylenol"]
        );
        assert_eq!(lexicon.find_in("Vitamin D helps"), ["vitamin d"]);
        assert!(
            lexicon
                .find_in("Eat oats and rest; ibuprofenx is not a word")
                .is_empty()
        );
        assert!(
            lexicon.find_in("apap").is_empty(),
            "short names are ambiguous"
        );
        assert_eq!(
            lexicon.find_in("a pain reliever may help"),
            ["pain reliever"]
        );
        assert_eq!(lexicon.find_in("可以吃布洛芬"), ["布洛芬"]);
    }
}
