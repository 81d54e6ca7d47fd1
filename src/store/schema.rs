//! Diesel table definitions, shared by both backends (see `migrations/`).

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        redirect_uris -> Text,
        grant_types -> Text,
        scopes -> Text,
        audiences -> Text,
        allowed_origins -> Text,
        created_at -> BigInt,
        require_mfa -> Bool,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<BigInt>,
        skip_consent -> Bool,
        post_logout_redirect_uris -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        roles -> Text,
        disabled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        email_verified -> Bool,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Nullable<Text>,
        auth_time -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
        amr -> Text,
        pending_user_id -> Nullable<Text>,
        pending_stage -> Nullable<Text>,
        pending_until -> Nullable<BigInt>,
        address_hash -> Nullable<Text>,
    }
}

diesel::table! {
    interactions (id_hash) {
        id_hash -> Text,
        session_hash -> Text,
        client_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        state -> Nullable<Text>,
        code_challenge -> Text,
        audience -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        nonce -> Nullable<Text>,
        max_age -> Nullable<BigInt>,
        prompt -> Text,
        login_hint -> Nullable<Text>,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        session_hash -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        amr -> Text,
        auth_time -> Nullable<BigInt>,
        nonce -> Nullable<Text>,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        audience -> Text,
        code_challenge -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        scope -> Text,
        audience -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        rotated_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_jwe -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        activate_at -> BigInt,
        retire_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        event -> Text,
        outcome -> Text,
        actor -> Text,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        address_hash -> Nullable<Text>,
        network -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret_jwe -> Text,
        last_step -> Nullable<BigInt>,
        confirmed_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sign_in_failures (user_id, device, factor) {
        user_id -> Text,
        device -> Text,
        factor -> Text,
        failures -> Integer,
        locked_until -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    registration_tokens (id) {
        id -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        max_uses -> BigInt,
        uses -> BigInt,
    }
}

diesel::table! {
    client_registrations (client_id) {
        client_id -> Text,
        access_token_hash -> Text,
        auth_method -> Text,
        initial_token_id -> Nullable<Text>,
        address_hash -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scopes -> Text,
        audiences -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(auth_codes -> grants (grant_id));
diesel::joinable!(refresh_tokens -> grants (grant_id));
diesel::allow_tables_to_appear_in_same_query!(
    clients,
    users,
    sessions,
    interactions,
    grants,
    auth_codes,
    refresh_tokens,
    signing_keys,
    audit_events,
    totp_factors,
    recovery_codes,
    registration_tokens,
    client_registrations,
    consents,
);
