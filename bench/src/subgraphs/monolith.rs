//! The whole benchmark schema served by one plain (non-federated) GraphQL server: the overhead
//! baseline. It answers the benchmark operation itself, with the same data and the same response a
//! router gets by joining the four subgraphs, so loading it directly shows what serving that
//! response costs without federation. It also serves `feed` (the varied workload's union), so it is
//! the independent source of every varied operation's expected response.

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, Union};

use super::data::{self, FeedEntry, ProductRow, ReviewRow, UserRow};

pub type MonolithSchema = Schema<Query, EmptyMutation, EmptySubscription>;

pub fn schema() -> MonolithSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription).finish()
}

pub struct Query;

#[Object]
impl Query {
    async fn me(&self) -> Option<User> {
        data::user_by_id("1").map(User)
    }

    async fn user(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }

    async fn users(&self) -> Option<Vec<Option<User>>> {
        Some(data::USERS.iter().map(|u| Some(User(u))).collect())
    }

    async fn top_products(
        &self,
        #[graphql(default_with = "Some(data::DEFAULT_TOP_PRODUCTS)")] first: Option<i32>,
    ) -> Option<Vec<Option<Product>>> {
        let first = first.unwrap_or(data::DEFAULT_TOP_PRODUCTS);
        Some(
            data::top_products(first)
                .map(|p| Some(Product(p)))
                .collect(),
        )
    }

    async fn feed(
        &self,
        #[graphql(default_with = "Some(data::DEFAULT_FEED_LENGTH)")] first: Option<i32>,
    ) -> Option<Vec<Option<FeedItem>>> {
        Some(
            data::feed(first)
                .map(|entry| {
                    Some(match entry {
                        FeedEntry::Review(id) => FeedItem::Review(Review(data::review_by_id(id)?)),
                        FeedEntry::Product(upc) => {
                            FeedItem::Product(Product(data::product_by_upc(upc)?))
                        }
                        FeedEntry::User(id) => FeedItem::User(User(data::user_by_id(id)?)),
                    })
                })
                .collect(),
        )
    }
}

/// What `Query.feed` lists.
#[derive(Union)]
pub enum FeedItem {
    Review(Review),
    Product(Product),
    User(User),
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

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(
            data::reviews_of_every_user()
                .map(|r| Some(Review(r)))
                .collect(),
        )
    }
}

pub struct Product(&'static ProductRow);

#[Object]
impl Product {
    async fn upc(&self) -> &'static str {
        self.0.upc
    }

    async fn name(&self) -> Option<&'static str> {
        Some(self.0.name)
    }

    async fn price(&self) -> Option<i32> {
        Some(self.0.price)
    }

    async fn weight(&self) -> Option<i32> {
        Some(self.0.weight)
    }

    async fn notes(&self) -> Option<&'static str> {
        Some(self.0.notes)
    }

    async fn internal(&self) -> Option<&'static str> {
        Some(self.0.internal)
    }

    async fn in_stock(&self) -> Option<bool> {
        data::stock_by_upc(self.0.upc).map(|s| s.in_stock)
    }

    async fn shipping_estimate(&self) -> Option<i32> {
        data::shipping_estimate(Some(self.0.price), Some(self.0.weight))
    }

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(
            data::reviews_of_product(self.0.upc)
                .map(|r| Some(Review(r)))
                .collect(),
        )
    }
}

pub struct Review(&'static ReviewRow);

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn body(&self) -> Option<&'static str> {
        Some(self.0.body)
    }

    async fn product(&self) -> Option<Product> {
        data::product_by_upc(self.0.product_upc).map(Product)
    }

    async fn author(&self) -> Option<User> {
        data::user_by_id(self.0.author_id).map(User)
    }
}
