//! The accounts subgraph: users, and the root fields that list them.

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema};

use super::data::{self, UserRow};

pub type AccountsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

pub fn schema() -> AccountsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user; the benchmark has no sign-in, so it is always user 1.
    async fn me(&self) -> Option<User> {
        data::user_by_id("1").map(User)
    }

    async fn user(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }

    async fn users(&self) -> Option<Vec<Option<User>>> {
        Some(data::USERS.iter().map(|u| Some(User(u))).collect())
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }
}

pub struct User(&'static UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn name(&self) -> Option<&'static str> {
        Some(self.0.name)
    }

    async fn username(&self) -> Option<&'static str> {
        Some(self.0.username)
    }

    async fn birthday(&self) -> Option<i32> {
        Some(self.0.birthday)
    }
}
