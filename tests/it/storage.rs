//! The encrypted store against the real PostgreSQL server.

use std::ops::ControlFlow;

use medbot::crypto::{MasterKey, Plaintext, Sealed};
use medbot::domain::{PatientId, Role, TelegramChatId, TelegramUserId};
use medbot::storage::{
    Actor, PatientSelector, ReadPurpose, RotationError, StorageError, Store, UnlockError,
    rotate_master_key,
};
use sqlx::Row;

use crate::helpers::*;

async fn patient(store: &Store, user: i64) -> PatientId {
    store
        .register_patient(TelegramUserId(user), TelegramChatId(user), Some("en"))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_reapply_as_a_no_op() {
    let (_url, db) = empty_database().await;
    let before = db.migration_status().await.unwrap();
    assert!(!before.is_empty());
    assert!(before.iter().all(|m| !m.applied));
    let after = db.migrate().await.unwrap();
    assert!(after.iter().all(|m| m.applied));
    let again = db.migrate().await.unwrap();
    assert_eq!(after, again);
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'
         AND table_name IN ('patients','patient_keys','messages','escalations','inbox','outbox','audit_log','master_keys')",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(tables, 8);
}

#[tokio::test]
async fn messages_round_trip_from_empty_to_64_kib_in_any_script() {
    let t = test_store(1).await;
    let p = patient(&t.store, 1001).await;
    let texts = [
        String::new(),
        "I have had a fever since Tuesday.".to_owned(),
        "我发烧三天了，咳嗽，胸口疼得厉害".to_owned(),
        "🤒🤧 naïve café Ñandú — ∑ \u{200d}👩‍⚕️".to_owned(),
        "x".repeat(64 * 1024),
        "病".repeat(64 * 1024 / 3),
    ];
    for text in &texts {
        t.store
            .append_message(p, Role::Patient, &Plaintext::new(text.clone()))
            .await
            .unwrap();
    }
    let read = t
        .store
        .read_messages(p, None, ReadPurpose::Context)
        .await
        .unwrap();
    let read: Vec<&str> = read.iter().map(|m| m.text.as_str()).collect();
    let expected: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(read, expected);
}

async fn audit_actions(store: &Store) -> Vec<String> {
    store
        .recent_audit(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn a_flipped_byte_anywhere_fails_the_read_clearly_and_is_audited() {
    let t = test_store(2).await;
    let p = patient(&t.store, 2001).await;
    let id = t
        .store
        .append_message(p, Role::Patient, &"short".into())
        .await
        .unwrap();
    let row = sqlx::query("SELECT nonce, ciphertext FROM messages WHERE id = $1")
        .bind(id.0)
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    let nonce: Vec<u8> = row.get("nonce");
    let ciphertext: Vec<u8> = row.get("ciphertext");
    // Every byte of the nonce, the ciphertext and the tag.
    for (column, original) in [("nonce", &nonce), ("ciphertext", &ciphertext)] {
        for i in 0..original.len() {
            let mut tampered = original.clone();
            tampered[i] ^= 0x01;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE messages SET {column} = $2 WHERE id = $1"
            )))
            .bind(id.0)
            .bind(&tampered)
            .execute(t.db.pool())
            .await
            .unwrap();
            let err = t
                .store
                .read_messages(p, None, ReadPurpose::Context)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StorageError::Integrity { .. }),
                "{column}[{i}]: {err}"
            );
            assert!(err.to_string().contains("failed its integrity check"));
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET {column} = $2 WHERE id = $1"
        )))
        .bind(id.0)
        .bind(original)
        .execute(t.db.pool())
        .await
        .unwrap();
    }
    // Restored, it reads again.
    let ok = t
        .store
        .read_messages(p, None, ReadPurpose::Context)
        .await
        .unwrap();
    assert_eq!(ok[0].text.as_str(), "short");
    let failures = audit_actions(&t.store)
        .await
        .into_iter()
        .filter(|a| a == "integrity_failure")
        .count();
    assert_eq!(failures, nonce.len() + ciphertext.len());
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_patient_or_row_does_not_decrypt() {
    let t = test_store(3).await;
    let alice = patient(&t.store, 3001).await;
    let bob = patient(&t.store, 3002).await;
    let secret = t
        .store
        .append_message(alice, Role::Patient, &"alice's secret".into())
        .await
        .unwrap();
    let bobs = t
        .store
        .append_message(bob, Role::Patient, &"bob's message".into())
        .await
        .unwrap();
    // Copy Alice's ciphertext over Bob's row.
    sqlx::query(
        "UPDATE messages SET nonce = a.nonce, ciphertext = a.ciphertext
         FROM messages a WHERE a.id = $1 AND messages.id = $2",
    )
    .bind(secret.0)
    .bind(bobs.0)
    .execute(t.db.pool())
    .await
    .unwrap();
    let err = t
        .store
        .read_messages(bob, None, ReadPurpose::History)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Integrity { .. }), "{err}");

    // Move Alice's whole row to Bob.
    sqlx::query("UPDATE messages SET patient_id = $2 WHERE id = $1")
        .bind(secret.0)
        .bind(bob.0)
        .execute(t.db.pool())
        .await
        .unwrap();
    assert!(
        t.store
            .read_messages(bob, None, ReadPurpose::History)
            .await
            .is_err()
    );

    // Copy Alice's wrapped data key onto Bob.
    sqlx::query(
        "UPDATE patient_keys SET nonce = a.nonce, wrapped_key = a.wrapped_key
         FROM patient_keys a WHERE a.patient_id = $1 AND patient_keys.patient_id = $2",
    )
    .bind(alice.0)
    .bind(bob.0)
    .execute(t.db.pool())
    .await
    .unwrap();
    let err = t
        .store
        .read_messages(bob, None, ReadPurpose::History)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Integrity { .. }), "{err}");
    assert!(
        audit_actions(&t.store)
            .await
            .iter()
            .filter(|a| *a == "integrity_failure")
            .count()
            >= 3
    );
}

#[tokio::test]
async fn no_patient_text_or_telegram_id_appears_in_a_database_dump() {
    let t = test_store(4).await;
    let canary = "CANARY-7f3a my left arm has been numb since the wedding";
    let telegram_user = 918_273_645_546_372i64;
    let p = patient(&t.store, telegram_user).await;
    t.store
        .append_message(p, Role::Patient, &canary.into())
        .await
        .unwrap();
    t.store
        .append_message(
            p,
            Role::Assistant,
            &"CANARY-ANSWER please call a clinician".into(),
        )
        .await
        .unwrap();
    let dump = pg_dump(&t.url);
    assert!(
        dump.contains("COPY public.messages"),
        "the dump has the messages table"
    );
    assert!(!dump.contains("CANARY"), "plaintext leaked into the dump");
    assert!(!dump.contains("numb since the wedding"));
    assert!(
        !dump.contains(&telegram_user.to_string()),
        "telegram id leaked"
    );
}

#[tokio::test]
async fn the_wrong_master_key_is_refused_and_changes_nothing() {
    let t = test_store(5).await;
    let p = patient(&t.store, 5001).await;
    t.store
        .append_message(p, Role::Patient, &"hello".into())
        .await
        .unwrap();
    let before = digest(&pg_dump(&t.url));
    let err = Store::unlock(&t.db, key_from_byte(6)).await.unwrap_err();
    assert!(matches!(err, UnlockError::WrongKey { active: 1 }), "{err}");
    assert!(err.to_string().contains("MEDBOT_MASTER_KEY does not match"));
    assert_eq!(before, digest(&pg_dump(&t.url)), "the database changed");
    // The right key still works.
    Store::unlock(&t.db, key_from_byte(5)).await.unwrap();
}

async fn read_all(store: &Store, patients: &[PatientId]) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for p in patients {
        let msgs = store
            .read_messages(*p, None, ReadPurpose::Context)
            .await
            .unwrap();
        all.push(
            msgs.into_iter()
                .map(|m| m.text.as_str().to_owned())
                .collect(),
        );
    }
    all
}

async fn patients_with_messages(store: &Store, n: i64) -> Vec<PatientId> {
    let mut ps = Vec::new();
    for i in 0..n {
        let p = patient(store, 7000 + i).await;
        for j in 0..3 {
            store
                .append_message(
                    p,
                    Role::Patient,
                    &Plaintext::new(format!("patient {i} message {j} 头痛")),
                )
                .await
                .unwrap();
        }
        ps.push(p);
    }
    ps
}

#[tokio::test]
async fn after_rotation_everything_reads_with_the_new_key_and_nothing_with_the_old() {
    let t = test_store(7).await;
    let ps = patients_with_messages(&t.store, 6).await;
    let expected = read_all(&t.store, &ps).await;

    let report = rotate_master_key(&t.db, &key_from_byte(7), &key_from_byte(8), |_| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(
        (report.from_version, report.to_version, report.patient_keys),
        (1, 2, 6)
    );

    let new = Store::unlock(&t.db, key_from_byte(8)).await.unwrap();
    assert_eq!(read_all(&new, &ps).await, expected);
    // Telegram lookups moved with the key.
    assert_eq!(
        new.find_patient(TelegramUserId(7000)).await.unwrap(),
        Some(ps[0])
    );

    let err = Store::unlock(&t.db, key_from_byte(7)).await.unwrap_err();
    assert!(
        matches!(err, UnlockError::RetiredKey { version: 1, .. }),
        "{err}"
    );
    // And at the crypto level: no wrapped key opens with the old master key.
    let old = key_from_byte(7);
    let rows = sqlx::query("SELECT patient_id, nonce, wrapped_key FROM patient_keys")
        .fetch_all(t.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    for row in rows {
        let sealed = Sealed::from_parts(row.get("nonce"), row.get("wrapped_key")).unwrap();
        assert!(
            old.unwrap(&sealed, PatientId(row.get("patient_id")))
                .is_err()
        );
    }
    // Rotating back to a retired key is refused.
    let err = rotate_master_key(&t.db, &key_from_byte(8), &key_from_byte(7), |_| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, RotationError::NewKeyReused));
}

#[tokio::test]
async fn a_rotation_interrupted_half_way_leaves_everything_readable_with_the_old_key() {
    let t = test_store(9).await;
    let ps = patients_with_messages(&t.store, 6).await;
    let expected = read_all(&t.store, &ps).await;
    let err = rotate_master_key(&t.db, &key_from_byte(9), &key_from_byte(10), |p| {
        if p.done == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, RotationError::Interrupted { done: 3, total: 6 }),
        "{err}"
    );

    let old = Store::unlock(&t.db, key_from_byte(9)).await.unwrap();
    assert_eq!(read_all(&old, &ps).await, expected);
    assert!(Store::unlock(&t.db, key_from_byte(10)).await.is_err());
    let versions: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT key_version FROM patient_keys")
        .fetch_all(t.db.pool())
        .await
        .unwrap();
    assert_eq!(versions, vec![1]);
}

#[tokio::test]
async fn erase_leaves_nothing_of_the_patient_and_others_intact() {
    let t = test_store(11).await;
    let gone = patient(&t.store, 11001).await;
    let kept = patient(&t.store, 11002).await;
    t.store
        .append_message(gone, Role::Patient, &"ERASE-ME".into())
        .await
        .unwrap();
    t.store
        .append_message(kept, Role::Patient, &"keep me".into())
        .await
        .unwrap();

    t.store.erase_patient(gone, Actor::Admin).await.unwrap();

    assert!(matches!(
        t.store.resolve_patient(&PatientSelector::Id(gone)).await,
        Err(StorageError::PatientNotFound(_))
    ));
    assert_eq!(
        t.store.find_patient(TelegramUserId(11001)).await.unwrap(),
        None
    );
    assert!(
        t.store
            .read_messages(gone, None, ReadPurpose::Export)
            .await
            .is_err()
    );
    assert!(t.store.export_patient(gone, Actor::Admin).await.is_err());
    for table in [
        "patients",
        "patient_keys",
        "patient_contacts",
        "messages",
        "escalations",
        "inbox",
        "outbox",
    ] {
        let column = if table == "patients" {
            "id"
        } else {
            "patient_id"
        };
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} = $1"
        )))
        .bind(gone.0)
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} still holds the erased patient");
    }
    let dump = pg_dump(&t.url);
    // Only the audit log remembers that an erase happened, under the now meaningless random id.
    let data_part: String = dump
        .split("COPY public.")
        .filter(|section| !section.starts_with("audit_log"))
        .collect();
    assert!(!data_part.contains(&gone.0.to_string()));

    let export = t.store.export_patient(kept, Actor::Admin).await.unwrap();
    assert_eq!(export.messages.len(), 1);
    assert_eq!(export.messages[0].text, "keep me");
    assert_eq!(export.telegram_user_id, TelegramUserId(11002));
    let actions = audit_actions(&t.store).await;
    assert!(
        actions.contains(&"erase_key_destroyed".to_owned())
            && actions.contains(&"erase".to_owned())
    );
    assert!(actions.contains(&"export".to_owned()));
}

#[tokio::test]
async fn the_audit_log_refuses_edits_and_its_chain_shows_tampering() {
    let t = test_store(12).await;
    let p = patient(&t.store, 12001).await;
    t.store
        .append_message(p, Role::Patient, &"x".into())
        .await
        .unwrap();
    for _ in 0..3 {
        t.store
            .read_messages(p, None, ReadPurpose::History)
            .await
            .unwrap();
    }
    let report = t.store.verify_audit_log().await.unwrap();
    assert_eq!((report.rows, report.first_broken_seq), (3, None));

    let refused = sqlx::query("UPDATE audit_log SET actor = 'admin' WHERE seq = 2")
        .execute(t.db.pool())
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(t.db.pool())
            .await
            .is_err()
    );

    // A superuser can switch the trigger off; the chain still shows the edit.
    let mut tx = t.db.pool().begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'admin' WHERE seq = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        t.store.verify_audit_log().await.unwrap().first_broken_seq,
        Some(2)
    );
}

#[tokio::test]
async fn registration_is_idempotent_and_concurrent_safe() {
    let t = test_store(13).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = t.store.clone();
        handles.push(tokio::spawn(async move {
            store
                .register_patient(TelegramUserId(13001), TelegramChatId(13001), None)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    assert!(ids.iter().all(|r| r.id == ids[0].id));
    assert_eq!(ids.iter().filter(|r| r.created).count(), 1);
    let (user, chat) = t.store.patient_contact(ids[0].id).await.unwrap();
    assert_eq!((user, chat), (TelegramUserId(13001), TelegramChatId(13001)));
}

#[test]
fn generated_keys_differ() {
    let a = MasterKey::generate().unwrap();
    let b = MasterKey::generate().unwrap();
    assert_ne!(a.key_id(), b.key_id());
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_a_storage_error_not_a_panic() {
    let t = test_store(170).await;
    let id = patient(&t.store, 17001).await;
    t.store
        .enqueue_patient_reply(id, &Plaintext::new("hello"), None)
        .await
        .unwrap();
    // Schema drift or a hand edit: a column the code reads as a number is NULL.
    sqlx::query("ALTER TABLE outbox ALTER COLUMN attempts DROP NOT NULL")
        .execute(t.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET attempts = NULL")
        .execute(t.db.pool())
        .await
        .unwrap();
    let read = t.store.take_patient_outbox(id).await;
    assert!(matches!(read, Err(StorageError::Database(_))), "{read:?}");
}
