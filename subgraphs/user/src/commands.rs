//! The user subgraph's commands, independent of GraphQL: registering and logging in.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};
use serde_json::json;
use shippy_contracts::{log, user};
use shippy_kit::{auth::IssuedToken, auth::KeyError, outbox};
use shippy_security::{login_limits::LoginLimited, revocation::RevocationError};
use uuid::Uuid;

use crate::{
    NAME, State,
    domain::{
        Company, Email, Password, PersonName,
        password::{self, HashError},
    },
    entity::{self, Column, Entity as Users},
};

/// A validated registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Display name.
    pub name: PersonName,
    /// Company, optional.
    pub company: Option<Company>,
    /// Email.
    pub email: Email,
    /// Password.
    pub password: Password,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Another account has this email (compared case-insensitively).
    #[error("this email is already registered")]
    EmailTaken,
    /// Wrong email or password; deliberately does not say which.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// Password hashing failure.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Token signing failure.
    #[error(transparent)]
    Token(#[from] KeyError),
    /// Too many login attempts for this account or from this client.
    #[error(transparent)]
    Limited(#[from] LoginLimited),
    /// The revocation store could not record a logout.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

/// Creates the account and records `user.registered` in the same transaction; returns it with a token.
pub async fn register(
    state: &State,
    new: NewUser,
) -> Result<(entity::Model, IssuedToken), AccountError> {
    let password_hash = password::hash(new.password.expose().to_owned()).await?;
    let id = Uuid::now_v7();
    let row = entity::ActiveModel {
        id: Set(id),
        name: Set(new.name.as_str().to_owned()),
        company: Set(new.company.as_ref().map(|c| c.as_str().to_owned())),
        email: Set(new.email.as_str().to_owned()),
        email_normalized: Set(new.email.normalized()),
        password_hash: Set(password_hash),
        scopes: Set(String::new()),
        created_at: Set(Utc::now()),
    };

    let txn = state.db.begin().await?;
    // The unique index decides, not a prior SELECT: two concurrent registrations cannot both pass.
    if let Err(err) = Users::insert(row).exec_without_returning(&txn).await {
        return Err(match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AccountError::EmailTaken,
            _ => AccountError::Db(err),
        });
    }
    let user = Users::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(id.to_string()))?;
    // On the log stream: the activity log keeps it, the vessel subgraph learns the user exists.
    let event = user::Registered {
        user_id: id,
        name: user.name.clone(),
        company: user.company.clone(),
    }
    .event(NAME)
    .map_err(|e| DbErr::Custom(format!("cannot encode `{}`: {e}", user::REGISTERED)))?;
    outbox::record(&txn, &event).await?;
    txn.commit().await?;
    state.outbox.wake();

    let token = state
        .tokens
        .issue(&id.to_string(), &user.email, user.scope_list())?;
    Ok((user, token))
}

/// Longest account key the login limits keep: no stored email is longer (RFC 5321 allows 254), and
/// a megabyte-long "email" must not cost a megabyte of limiter memory.
const LIMIT_KEY_MAX: usize = 320;

/// Checks the credentials and records `user.logged_in`; returns the user with a token. Refused before
/// any password is hashed when the account or `client_ip` is over its login limit; a failure counts
/// against the account whether it exists or not.
pub async fn login(
    state: &State,
    email: &str,
    password: &str,
    client_ip: Option<std::net::IpAddr>,
) -> Result<(entity::Model, IssuedToken), AccountError> {
    let normalized = email.trim().to_lowercase();
    let account: String = normalized.chars().take(LIMIT_KEY_MAX).collect();
    state.login_limits.begin(&account, client_ip)?;
    let found = Users::find()
        .filter(Column::EmailNormalized.eq(normalized))
        .one(&state.db)
        .await?;
    let Some(user) = found else {
        password::verify_against_dummy(password.to_owned()).await?;
        state.login_limits.failed(&account);
        return Err(AccountError::InvalidCredentials);
    };
    if !password::verify(password.to_owned(), user.password_hash.clone()).await? {
        state.login_limits.failed(&account);
        return Err(AccountError::InvalidCredentials);
    }
    state.login_limits.succeeded(&account);

    let txn = state.db.begin().await?;
    let event = log::event(
        NAME,
        "user.logged_in",
        Some(user.id.to_string()),
        format!("{} logged in", user.name),
        json!({ "user_id": user.id }),
    );
    outbox::record(&txn, &event).await?;
    txn.commit().await?;
    state.outbox.wake();

    let token = state
        .tokens
        .issue(&user.id.to_string(), &user.email, user.scope_list())?;
    Ok((user, token))
}

/// Revokes the token with id `jti` until `expires_at` (its `exp`), so the router refuses it from the
/// next request on.
pub async fn logout(state: &State, jti: &str, expires_at: i64) -> Result<(), AccountError> {
    state.revocations.revoke(jti, expires_at).await?;
    Ok(())
}
