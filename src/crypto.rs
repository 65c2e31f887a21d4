//! Encryption at rest: AES-256-GCM with one random data key per patient, each wrapped by the master key.
//!
//! The types carry the rules. [`Plaintext`] and [`Sealed`] are different types, so storage code cannot
//! write text it forgot to encrypt. Keys are neither `Clone` nor `Serialize`, print as `[redacted]`,
//! and are zeroized on drop. Every ciphertext is bound by associated data ([`Binding`]) to its purpose,
//! its patient and its row, so a ciphertext copied to another row or another patient fails to decrypt
//! instead of producing someone else's text.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::domain::{PatientId, TelegramUserId};

/// Length of every key medbot uses (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce (96 bits, random per encryption).
pub const NONCE_LEN: usize = 12;

/// Why a key or a ciphertext could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the key is not valid base64")]
    KeyNotBase64,
    #[error(
        "the key is {0} bytes long; a master key is exactly 32 bytes (base64 of 32 random bytes)"
    )]
    KeyWrongLength(usize),
    #[error(
        "the ciphertext failed authentication: it was altered, or it belongs to another patient or row"
    )]
    Authentication,
    #[error("the stored nonce is {0} bytes long, expected 12")]
    BadNonce(usize),
    #[error("the decrypted text is not valid UTF-8")]
    NotUtf8,
    #[error("the system random number generator failed")]
    Random,
}

/// The key that wraps every patient's data key. Comes from `MEDBOT_MASTER_KEY(_FILE)`.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self { bytes })
    }

    /// Parses the base64 form used in configuration and key files (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let mut decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| CryptoError::KeyNotBase64)?,
        );
        if decoded.len() != KEY_LEN {
            let len = decoded.len();
            decoded.zeroize();
            return Err(CryptoError::KeyWrongLength(len));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(Self { bytes })
    }

    /// The base64 form, for `medbot keys generate`. Kept secret until the caller prints it.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(BASE64.encode(self.bytes.as_ref()))
    }

    /// A public fingerprint of the key: lets the database say "this is not the key you used" without
    /// storing anything that helps recover the key.
    pub fn key_id(&self) -> [u8; 16] {
        let full = self.derive(b"medbot/v1/key-id");
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        id
    }

    /// The key under which Telegram ids are hashed for lookup.
    pub fn lookup_key(&self) -> LookupKey {
        LookupKey {
            bytes: self.derive(b"medbot/v1/lookup"),
        }
    }

    /// Encrypts a patient's data key for storage. The patient id is bound in as associated data, so a
    /// wrapped key moved to another patient does not unwrap.
    pub fn wrap(&self, key: &DataKey, patient: PatientId) -> Result<Sealed, CryptoError> {
        seal(
            &self.bytes,
            key.bytes.as_ref(),
            &Binding::data_key(patient).to_bytes(),
        )
    }

    /// Decrypts a wrapped data key. Fails with [`CryptoError::Authentication`] under any other master
    /// key, or when the wrapped key belongs to another patient.
    pub fn unwrap(&self, wrapped: &Sealed, patient: PatientId) -> Result<DataKey, CryptoError> {
        let opened = Zeroizing::new(open(
            &self.bytes,
            wrapped,
            &Binding::data_key(patient).to_bytes(),
        )?);
        if opened.len() != KEY_LEN {
            return Err(CryptoError::Authentication);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&opened);
        Ok(DataKey { bytes })
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

/// Key for the keyed hash that finds a patient by Telegram id without decrypting anything.
pub struct LookupKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey([redacted])")
    }
}

impl LookupKey {
    /// HMAC-SHA256 of the Telegram user id.
    pub fn telegram_user(&self, user: TelegramUserId) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(b"telegram-user:");
        mac.update(user.0.to_string().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// One patient's data key. Exists unwrapped only in memory, only while it is used.
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self { bytes })
    }

    pub fn encrypt(&self, text: &Plaintext, binding: &Binding) -> Result<Sealed, CryptoError> {
        seal(&self.bytes, text.0.as_bytes(), &binding.to_bytes())
    }

    pub fn decrypt(&self, sealed: &Sealed, binding: &Binding) -> Result<Plaintext, CryptoError> {
        let bytes = open(&self.bytes, sealed, &binding.to_bytes())?;
        String::from_utf8(bytes).map(Plaintext::new).map_err(|e| {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            CryptoError::NotUtf8
        })
    }
}

/// Text a patient or doctor wrote, or the model generated, in the clear. Zeroized on drop; its `Debug`
/// shows only the length so that it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<String>);

impl Plaintext {
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

impl From<&str> for Plaintext {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

/// A ciphertext with the nonce it was sealed under: the only form in which text reaches storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Rebuilds a sealed value from its stored columns.
    pub fn from_parts(nonce: &[u8], ciphertext: Vec<u8>) -> Result<Self, CryptoError> {
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| CryptoError::BadNonce(nonce.len()))?;
        Ok(Self { nonce, ciphertext })
    }
}

/// What a ciphertext is for, and whose it is. Serialised as associated data, so decryption succeeds
/// only for the exact purpose, patient and row it was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub purpose: Purpose,
    pub patient: PatientId,
    pub record: Uuid,
}

/// The kinds of record medbot encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    DataKey,
    Message,
    Contact,
    EscalationDraft,
    EscalationFinal,
    EscalationAssessment,
    Outbox,
    Medication,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::DataKey => b"data-key",
            Purpose::Message => b"message",
            Purpose::Contact => b"contact",
            Purpose::EscalationDraft => b"escalation-draft",
            Purpose::EscalationFinal => b"escalation-final",
            Purpose::EscalationAssessment => b"escalation-assessment",
            Purpose::Outbox => b"outbox",
            Purpose::Medication => b"medication",
        }
    }
}

impl Binding {
    pub fn new(purpose: Purpose, patient: PatientId, record: Uuid) -> Self {
        Self {
            purpose,
            patient,
            record,
        }
    }

    fn data_key(patient: PatientId) -> Self {
        Self::new(Purpose::DataKey, patient, patient.0)
    }

    fn to_bytes(self) -> Vec<u8> {
        let label = self.purpose.label();
        let mut aad = Vec::with_capacity(10 + label.len() + 1 + 32);
        aad.extend_from_slice(b"medbot/v1/");
        aad.extend_from_slice(label);
        aad.push(0);
        aad.extend_from_slice(self.patient.0.as_bytes());
        aad.extend_from_slice(self.record.as_bytes());
        aad
    }
}

fn seal(key: &[u8; KEY_LEN], message: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("keys are 32 bytes");
    let nonce = aes_gcm::Nonce::try_generate().map_err(|_| CryptoError::Random)?;
    let ciphertext = cipher
        .encrypt(&nonce, Payload { msg: message, aad })
        // Only fails for inputs beyond 64 GiB, which no caller produces.
        .map_err(|_| CryptoError::Authentication)?;
    Ok(Sealed {
        nonce: nonce.into(),
        ciphertext,
    })
}

fn open(key: &[u8; KEY_LEN], sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("keys are 32 bytes");
    let nonce = aes_gcm::Nonce::from(sealed.nonce);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn patient() -> PatientId {
        PatientId(Uuid::new_v4())
    }

    #[test]
    fn round_trip_sizes_and_scripts() {
        let key = DataKey::generate().unwrap();
        let p = patient();
        let mut texts: Vec<String> = vec![
            String::new(),
            "胸口疼得厉害，喘不上气".into(),
            "fever 🤒🔥 and cough 😷 — café, naïve".into(),
            "\u{200d}\u{fe0f}\u{0301}zero-width and combining".into(),
        ];
        texts.push("a".repeat(64 * 1024));
        texts.push("医".repeat(64 * 1024 / 3));
        texts.push("🩺".repeat(64 * 1024 / 4));
        for text in texts {
            let binding = Binding::new(Purpose::Message, p, Uuid::new_v4());
            let sealed = key
                .encrypt(&Plaintext::new(text.clone()), &binding)
                .unwrap();
            assert_eq!(sealed.ciphertext.len(), text.len() + 16);
            assert_eq!(key.decrypt(&sealed, &binding).unwrap().as_str(), text);
        }
    }

    #[test]
    fn nonces_are_fresh_per_encryption() {
        let key = DataKey::generate().unwrap();
        let binding = Binding::new(Purpose::Message, patient(), Uuid::new_v4());
        let a = key.encrypt(&"same".into(), &binding).unwrap();
        let b = key.encrypt(&"same".into(), &binding).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn binding_to_another_row_patient_or_purpose_fails() {
        let key = DataKey::generate().unwrap();
        let p = patient();
        let row = Uuid::new_v4();
        let binding = Binding::new(Purpose::Message, p, row);
        let sealed = key.encrypt(&"secret".into(), &binding).unwrap();
        for wrong in [
            Binding::new(Purpose::Message, p, Uuid::new_v4()),
            Binding::new(Purpose::Message, patient(), row),
            Binding::new(Purpose::EscalationDraft, p, row),
        ] {
            assert!(matches!(
                key.decrypt(&sealed, &wrong),
                Err(CryptoError::Authentication)
            ));
        }
    }

    #[test]
    fn wrapped_key_opens_only_with_its_master_key_and_patient() {
        let master = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let p = patient();
        let dek = DataKey::generate().unwrap();
        let wrapped = master.wrap(&dek, p).unwrap();
        let binding = Binding::new(Purpose::Message, p, Uuid::new_v4());
        let sealed = dek.encrypt(&"x".into(), &binding).unwrap();
        let unwrapped = master.unwrap(&wrapped, p).unwrap();
        assert_eq!(unwrapped.decrypt(&sealed, &binding).unwrap().as_str(), "x");
        assert!(other.unwrap(&wrapped, p).is_err());
        assert!(master.unwrap(&wrapped, patient()).is_err());
    }

    #[test]
    fn master_key_parsing_errors_name_the_problem_and_never_the_key() {
        let short = BASE64.encode([7u8; 31]);
        let err = MasterKey::from_base64(&short).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the key is 31 bytes long; a master key is exactly 32 bytes (base64 of 32 random bytes)"
        );
        assert!(matches!(
            MasterKey::from_base64("not base64 !!"),
            Err(CryptoError::KeyNotBase64)
        ));
        let key = MasterKey::from_base64(&BASE64.encode([9u8; 32])).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
        assert_eq!(
            format!("{:?}", Plaintext::new("chest pain")),
            "Plaintext(10 bytes)"
        );
    }

    #[test]
    fn key_id_and_lookup_are_stable_and_key_specific() {
        let a = MasterKey::from_base64(&BASE64.encode([1u8; 32])).unwrap();
        let a2 = MasterKey::from_base64(&BASE64.encode([1u8; 32])).unwrap();
        let b = MasterKey::from_base64(&BASE64.encode([2u8; 32])).unwrap();
        assert_eq!(a.key_id(), a2.key_id());
        assert_ne!(a.key_id(), b.key_id());
        let user = TelegramUserId(42);
        assert_eq!(
            a.lookup_key().telegram_user(user),
            a2.lookup_key().telegram_user(user)
        );
        assert_ne!(
            a.lookup_key().telegram_user(user),
            b.lookup_key().telegram_user(user)
        );
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in any::<String>()) {
            let key = DataKey::generate().unwrap();
            let binding = Binding::new(Purpose::Message, patient(), Uuid::new_v4());
            let sealed = key.encrypt(&Plaintext::new(text.clone()), &binding).unwrap();
            let opened = key.decrypt(&sealed, &binding).unwrap();
            prop_assert_eq!(opened.as_str(), text.as_str());
        }

        #[test]
        fn any_flipped_byte_is_detected(text in ".{0,64}", pick in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = DataKey::generate().unwrap();
            let binding = Binding::new(Purpose::Message, patient(), Uuid::new_v4());
            let mut sealed = key.encrypt(&Plaintext::new(text), &binding).unwrap();
            let total = sealed.ciphertext.len() + NONCE_LEN;
            let i = pick.index(total);
            if i < NONCE_LEN { sealed.nonce[i] ^= 1 << bit } else { sealed.ciphertext[i - NONCE_LEN] ^= 1 << bit }
            prop_assert!(matches!(key.decrypt(&sealed, &binding), Err(CryptoError::Authentication)));
        }
    }
}
