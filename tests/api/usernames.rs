//! Login names are one per person whatever their letter case: `Alice` and `alice` are one
//! user, found by any case at sign-in and by the password grant, and refused a second time.

use gatehouse::registry::RegistryError;

use crate::both_backends;
use crate::helpers::*;

both_backends!(usernames_are_case_insensitive);
async fn usernames_are_case_insensitive(app: TestApp) {
    let alice = app.user("alice", &[]);

    // A second account whose name differs only in case is a conflict.
    for name in ["Alice", "ALICE", "alice"] {
        match app.try_user(name) {
            Err(RegistryError::Conflict(msg)) => {
                assert!(msg.contains("alice"), "{name}: {msg}")
            }
            other => panic!("{name}: expected a conflict, got {other:?}"),
        }
    }

    // The browser sign-in finds alice under any case.
    let spa = app.spa();
    let tokens = app.tokens_for(&spa, "ALICE").await;
    assert_eq!(claims_of(&tokens)["sub"], alice.as_str());

    // So does the password grant.
    let client = app.password_client();
    let (status, _, body) = app
        .token()
        .password("Alice", PASSWORD)
        .basic(&client)
        .read()
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims_of(&body)["sub"], alice.as_str());
}
