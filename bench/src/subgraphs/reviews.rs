//! The reviews subgraph: reviews, the `reviews` of users and products, and `Review.author`, which
//! `@provides` the author's `username` so that the router need not ask accounts for it. Also the
//! supergraph's two subscriptions, which replay the reviews at a steady pace, and `feed`, a list of
//! the union `FeedItem` (reviews, products, users) that only the varied workload's supergraph has:
//! reviews knows which items the feed holds, the other subgraphs own their fields.

use std::time::Duration;

use async_graphql::{EmptyMutation, Error, ID, Object, Schema, Subscription, Union};
use futures::{Stream, StreamExt};

use super::data::{self, FeedEntry, ReviewRow};

pub type ReviewsSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

pub fn schema() -> ReviewsSchema {
    Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .enable_federation()
        .enable_subscription_in_federation()
        .finish()
}

pub struct Query;

#[Object]
impl Query {
    /// The first `first` items of the feed. Products and users are returned as bare references
    /// (upc, id): the router fetches their fields from products, inventory and accounts.
    async fn feed(
        &self,
        #[graphql(default_with = "Some(data::DEFAULT_FEED_LENGTH)")] first: Option<i32>,
    ) -> Option<Vec<Option<FeedItem>>> {
        Some(
            data::feed(first)
                .map(|entry| {
                    Some(match entry {
                        FeedEntry::Review(id) => FeedItem::Review(Review(data::review_by_id(id)?)),
                        FeedEntry::Product(upc) => FeedItem::Product(Product {
                            upc: upc.to_owned(),
                        }),
                        FeedEntry::User(id) => FeedItem::User(User {
                            id: ID::from(id),
                            username: None,
                        }),
                    })
                })
                .collect(),
        )
    }

    #[graphql(entity)]
    async fn find_review_by_id(&self, id: ID) -> Option<Review> {
        data::review_by_id(&id).map(Review)
    }

    /// Any user id resolves: reviews only adds fields to users that accounts owns. Their `username`
    /// is external here and only known through `Review.author`.
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User { id, username: None }
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Product {
        Product { upc }
    }
}

/// What `Query.feed` lists.
#[derive(Union)]
pub enum FeedItem {
    Review(Review),
    Product(Product),
    User(User),
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
        Some(Product {
            upc: self.0.product_upc.to_owned(),
        })
    }

    #[graphql(provides = "username")]
    async fn author(&self) -> Option<User> {
        Some(User {
            id: ID::from(self.0.author_id),
            username: Some(self.0.author_username),
        })
    }
}

pub struct User {
    id: ID,
    username: Option<&'static str>,
}

#[Object]
impl User {
    async fn id(&self) -> &ID {
        &self.id
    }

    #[graphql(external)]
    async fn username(&self) -> Option<&'static str> {
        self.username
    }

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(
            data::reviews_of_every_user()
                .map(|r| Some(Review(r)))
                .collect(),
        )
    }
}

pub struct Product {
    upc: String,
}

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        &self.upc
    }

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(
            data::reviews_of_product(&self.upc)
                .map(|r| Some(Review(r)))
                .collect(),
        )
    }
}

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every `step`-th review, one each `intervalInMs`, then the stream ends.
    async fn review_added(
        &self,
        #[graphql(default = 1)] step: Option<i32>,
        #[graphql(default = 1000)] interval_in_ms: Option<i32>,
    ) -> Result<impl Stream<Item = Option<Review>> + use<>, Error> {
        let step = usize::try_from(step.unwrap_or(1))
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| Error::new("step must be a positive number"))?;
        let interval = interval(interval_in_ms)?;
        Ok(paced(
            data::REVIEWS.iter().step_by(step).collect(),
            interval,
        ))
    }

    /// The reviews of one product, one each `intervalInMs`, then the stream ends.
    async fn review_added_for_product(
        &self,
        product_upc: String,
        #[graphql(default = 1000)] interval_in_ms: Option<i32>,
    ) -> Result<impl Stream<Item = Option<Review>> + use<>, Error> {
        let interval = interval(interval_in_ms)?;
        Ok(paced(
            data::reviews_of_product(&product_upc).collect(),
            interval,
        ))
    }
}

fn interval(interval_in_ms: Option<i32>) -> Result<Duration, Error> {
    let ms = u64::try_from(interval_in_ms.unwrap_or(1000))
        .map_err(|_| Error::new("intervalInMs must not be negative"))?;
    Ok(Duration::from_millis(ms))
}

fn paced(
    reviews: Vec<&'static ReviewRow>,
    interval: Duration,
) -> impl Stream<Item = Option<Review>> {
    futures::stream::iter(reviews).then(move |row| async move {
        tokio::time::sleep(interval).await;
        Some(Review(row))
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn ids(query: &str) -> Vec<String> {
        let responses: Vec<_> = schema().execute_stream(query).collect().await;
        responses
            .into_iter()
            .map(|r| {
                assert!(r.errors.is_empty(), "{:?}", r.errors);
                let data = r.data.into_json().unwrap();
                let review = data.as_object().unwrap().values().next().unwrap().clone();
                review["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn review_added_steps_through_the_reviews() {
        let got = ids("subscription { reviewAdded(step: 5, intervalInMs: 0) { id } }").await;
        assert_eq!(got, ["1", "6", "11"]);
        let all = ids("subscription { reviewAdded(intervalInMs: 0) { id } }").await;
        assert_eq!(all.len(), data::REVIEWS.len());
    }

    #[tokio::test]
    async fn review_added_for_product_lists_that_products_reviews() {
        let got = ids(
            r#"subscription { reviewAddedForProduct(productUpc: "4", intervalInMs: 0) { id } }"#,
        )
        .await;
        assert_eq!(got, ["10", "11"]);
    }

    #[tokio::test]
    async fn bad_arguments_are_errors() {
        for query in [
            "subscription { reviewAdded(step: 0, intervalInMs: 0) { id } }",
            "subscription { reviewAdded(intervalInMs: -1) { id } }",
        ] {
            let responses: Vec<_> = schema().execute_stream(query).collect().await;
            assert_eq!(responses.len(), 1, "{query}");
            assert!(!responses[0].errors.is_empty(), "{query}");
        }
    }

    #[tokio::test]
    async fn reviews_pace_their_events() {
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let got = ids(
            r#"subscription { reviewAddedForProduct(productUpc: "1", intervalInMs: 1000) { id } }"#,
        )
        .await;
        assert_eq!(got.len(), 4);
        assert!(started.elapsed() >= std::time::Duration::from_secs(4));
    }
}
