//! The user subgraph's GraphQL API: `User` (a federation entity keyed by `id`), registration, login, `me`,
//! `user`, `users`.
//!
//! Email visibility: a user's `email` is returned only to that user (when the request's token is theirs, or
//! in the `AuthPayload` of their own `register`/`login`); everyone else gets `null`.

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shippy_kit::{
    auth::{self, SCOPE_ADMIN},
    error,
    graphql::{self, RowLoader, authenticated, rate_limit},
    pagination::{Page, parse_id},
};
use uuid::Uuid;

use crate::{
    State,
    commands::{self, AccountError, NewUser},
    domain::{Company, Email, Password, PersonName},
    entity::{self, Column, Entity as Users},
};

impl ErrorExtensions for AccountError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            AccountError::EmailTaken => error::bad_input("input.email", self),
            AccountError::InvalidCredentials => error::unauthenticated(self),
            AccountError::Limited(limited) => error::rate_limited(self, limited.retry_after),
            AccountError::Db(_)
            | AccountError::Hash(_)
            | AccountError::Token(_)
            | AccountError::Revocation(_) => error::internal("accounts", self),
        }
    }
}

/// Loads users by id, one query per batch.
pub type UserLoader = RowLoader<Users>;

/// The [`UserLoader`] of `db`.
pub fn user_loader(db: DatabaseConnection) -> UserLoader {
    RowLoader::new(db, Column::Id, |row: &entity::Model| row.id)
}

/// A Shippy user.
pub struct User {
    row: entity::Model,
    /// Set when the viewer is known to be this user without a token (their own register/login payload).
    is_viewer: bool,
}

impl User {
    fn new(row: entity::Model) -> Self {
        Self {
            row,
            is_viewer: false,
        }
    }
}

#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Company, if the user gave one.
    async fn company(&self) -> Option<&str> {
        self.row.company.as_deref()
    }

    /// Email address: visible only to the user themself, `null` for anyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let own = self.is_viewer
            || auth::caller(ctx).is_some_and(|claims| claims.sub == self.row.id.to_string());
        own.then_some(self.row.email.as_str())
    }

    /// Registration time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
}

/// A token and the user it belongs to.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// A JWT to send as `Authorization: Bearer <token>`.
    token: String,
    /// The user.
    user: User,
}

impl AuthPayload {
    fn new(row: entity::Model, token: String) -> Self {
        Self {
            token,
            user: User {
                row,
                is_viewer: true,
            },
        }
    }
}

/// Registration details.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Display name, 1 to 100 characters.
    name: String,
    /// Company, up to 100 characters; optional.
    company: Option<String>,
    /// Email address; unique, compared case-insensitively.
    email: String,
    /// Password, 8 to 128 characters.
    password: String,
}

impl RegisterInput {
    fn parse(self) -> Result<NewUser> {
        let company = match self.company.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => {
                Some(Company::parse(raw).map_err(|e| error::bad_input("input.company", e))?)
            }
        };
        Ok(NewUser {
            name: PersonName::parse(&self.name).map_err(|e| error::bad_input("input.name", e))?,
            company,
            email: Email::parse(&self.email).map_err(|e| error::bad_input("input.email", e))?,
            password: Password::parse(&self.password)
                .map_err(|e| error::bad_input("input.password", e))?,
        })
    }
}

fn state<'a>(ctx: &'a Context<'_>) -> Result<&'a State> {
    graphql::schema_data(ctx)
}

async fn load(ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
    Ok(graphql::load_one::<UserLoader, _>(ctx, id)
        .await?
        .map(User::new))
}

/// Queries.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The caller. Requires a token.
    #[graphql(directive = authenticated::apply())]
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let claims = auth::require(ctx)?;
        let id = Uuid::parse_str(&claims.sub)
            .map_err(|_| error::unauthenticated("the token subject is not a user id"))?;
        load(ctx, id).await
    }

    /// One user by id, or null.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        load(ctx, parse_id("id", &id)?).await
    }

    /// All users, oldest first, `first` (1 to 100, default 20) after the user `after`. Requires scope `admin`.
    #[graphql(requires_scopes = "admin")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<User>> {
        auth::require_scope(ctx, SCOPE_ADMIN)?;
        let page = Page::parse(first, after.as_ref())?;
        let mut query = Users::find().order_by_asc(Column::Id).limit(page.limit);
        if let Some(after) = page.after {
            query = query.filter(Column::Id.gt(after));
        }
        let rows = query
            .all(&state(ctx)?.db)
            .await
            .map_err(|e| error::internal("listing users", e))?;
        Ok(rows.into_iter().map(User::new).collect())
    }

    /// Federation entity resolver for `User @key(fields: "id")`.
    #[graphql(entity)]
    async fn find_user_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<User>> {
        load(ctx, parse_id("id", &id)?).await
    }
}

/// Mutations.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and returns a token for it. Records `user.registered`. At most 5 per hour per
    /// client IP.
    #[graphql(directive = rate_limit::apply(5, "1h".into(), Some("ip".into())))]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let new = input.parse()?;
        let (row, token) = commands::register(state(ctx)?, new)
            .await
            .map_err(|e| e.extend())?;
        Ok(AuthPayload::new(row, token.token))
    }

    /// Exchanges email and password for a token. Any failure is the same `UNAUTHENTICATED` error, so it does
    /// not reveal whether the email has an account. Records `user.logged_in`. At most 10 per minute per
    /// client IP at the router, which slows password guessing down; the subgraph itself also allows at
    /// most 5 failures per account per 15 minutes and 20 attempts per client IP per minute (by default),
    /// answering `RATE_LIMITED` with `retryAfter` past them.
    #[graphql(directive = rate_limit::apply(10, "1m".into(), Some("ip".into())))]
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AuthPayload> {
        let (row, token) = commands::login(state(ctx)?, &email, &password, auth::client_ip(ctx))
            .await
            .map_err(|e| e.extend())?;
        Ok(AuthPayload::new(row, token.token))
    }

    /// Revokes the token this request carries until it expires: the router refuses it from the next
    /// request on. Other tokens of the same user stay valid. Returns `true`.
    #[graphql(directive = authenticated::apply())]
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let claims = auth::require(ctx)?;
        let Some(jti) = claims.jti.as_deref() else {
            return Err(error::bad_input(
                "authorization",
                "the token has no `jti`, so it cannot be revoked; it stays valid until it expires",
            ));
        };
        commands::logout(state(ctx)?, jti, claims.exp)
            .await
            .map_err(|e| e.extend())?;
        Ok(true)
    }
}

/// The user subgraph's schema type.
pub type UserSchema = async_graphql::Schema<Query, Mutation, EmptySubscription>;
