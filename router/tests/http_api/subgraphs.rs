//! The four benchmark subgraphs (accounts, inventory, products, reviews) as async-graphql
//! services, with their data read off the benchmark's expected response, so that a correct
//! router answers the benchmark operation with exactly that response.
//!
//! Each subgraph sits behind a handler with test knobs: it counts calls, records request headers
//! and bodies, and can be slowed down or made to fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{
    ComplexObject, Context, EmptySubscription, ErrorExtensions, ID, Object, Schema, SimpleObject,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value as Json;

use crate::mock::MockServer;

#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub name: String,
    pub review_ids: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ProductRow {
    pub upc: String,
    pub name: String,
    pub price: i64,
    pub weight: i64,
    pub in_stock: bool,
    pub review_ids: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ReviewRow {
    pub id: String,
    pub body: String,
    pub author_id: String,
    pub product_upc: Option<String>,
}

/// The benchmark's data set.
pub struct Data {
    pub users: Mutex<Vec<UserRow>>,
    pub products: Vec<ProductRow>,
    pub reviews: Vec<ReviewRow>,
    /// Root mutation fields in the order the accounts subgraph executed them.
    pub mutation_log: Mutex<Vec<String>>,
}

fn walk<'j>(value: &'j Json, f: &mut impl FnMut(&'j serde_json::Map<String, Json>)) {
    match value {
        Json::Object(map) => {
            f(map);
            map.values().for_each(|v| walk(v, f));
        }
        Json::Array(items) => items.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

impl Data {
    pub fn from_expected_response(expected: &Json) -> Data {
        let data = &expected["data"];
        let ids = |list: &Json| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        };
        let users = data["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| UserRow {
                id: u["id"].as_str().unwrap().into(),
                username: u["username"].as_str().unwrap().into(),
                name: u["name"].as_str().unwrap().into(),
                review_ids: ids(&u["reviews"]),
            })
            .collect();
        let mut products: Vec<ProductRow> = Vec::new();
        let mut reviews: HashMap<String, ReviewRow> = HashMap::new();
        walk(data, &mut |object| {
            if let Some(upc) = object.get("upc").and_then(Json::as_str)
                && !products.iter().any(|p| p.upc == upc)
            {
                products.push(ProductRow {
                    upc: upc.into(),
                    name: object["name"].as_str().unwrap().into(),
                    price: object["price"].as_i64().unwrap(),
                    weight: object["weight"].as_i64().unwrap(),
                    in_stock: object["inStock"].as_bool().unwrap(),
                    review_ids: Vec::new(),
                });
            }
            if let Some(body) = object.get("body").and_then(Json::as_str) {
                let id = object["id"].as_str().unwrap().to_string();
                let row = reviews.entry(id.clone()).or_insert_with(|| ReviewRow {
                    id,
                    body: body.into(),
                    author_id: String::new(),
                    product_upc: None,
                });
                if let Some(author) = object
                    .get("author")
                    .and_then(|a| a.get("id"))
                    .and_then(Json::as_str)
                {
                    row.author_id = author.into();
                }
                if let Some(upc) = object
                    .get("product")
                    .and_then(|p| p.get("upc"))
                    .and_then(Json::as_str)
                {
                    row.product_upc = Some(upc.into());
                }
            }
        });
        for top in data["topProducts"].as_array().unwrap() {
            let upc = top["upc"].as_str().unwrap();
            let review_ids = ids(&top["reviews"]);
            for id in &review_ids {
                reviews
                    .get_mut(id)
                    .unwrap()
                    .product_upc
                    .get_or_insert_with(|| upc.to_string());
            }
            products
                .iter_mut()
                .find(|p| p.upc == upc)
                .unwrap()
                .review_ids = review_ids;
        }
        products.sort_by(|a, b| a.upc.cmp(&b.upc));
        let mut reviews: Vec<ReviewRow> = reviews.into_values().collect();
        reviews.sort_by_key(|r| r.id.parse::<u32>().unwrap());
        Data {
            users: Mutex::new(users),
            products,
            reviews,
            mutation_log: Mutex::new(Vec::new()),
        }
    }

    fn user(&self, id: &str) -> Option<UserRow> {
        self.users
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.id == id)
            .cloned()
    }

    fn product(&self, upc: &str) -> Option<&ProductRow> {
        self.products.iter().find(|p| p.upc == upc)
    }

    fn review(&self, id: &str) -> Option<&ReviewRow> {
        self.reviews.iter().find(|r| r.id == id)
    }
}

// ---- accounts ----

pub struct AccountsUser {
    row: UserRow,
}

#[Object(name = "User")]
impl AccountsUser {
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }
    async fn name(&self) -> &str {
        &self.row.name
    }
    async fn username(&self) -> &str {
        &self.row.username
    }
    /// Fails for user 1 (the author of every review), to test re-pathing of entity errors.
    async fn birthday(&self) -> async_graphql::Result<Option<i32>> {
        if self.row.id == "1" {
            return Err(async_graphql::Error::new("birthday is secret")
                .extend_with(|_, e| e.set("code", "SECRET")));
        }
        Ok(Some(self.row.id.parse::<i32>().unwrap_or(0) * 1000))
    }
}

pub struct AccountsQuery;

#[Object(name = "Query")]
impl AccountsQuery {
    async fn me(&self, ctx: &Context<'_>) -> Option<AccountsUser> {
        ctx.data_unchecked::<Arc<Data>>()
            .user("1")
            .map(|row| AccountsUser { row })
    }
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Option<AccountsUser> {
        ctx.data_unchecked::<Arc<Data>>()
            .user(&id)
            .map(|row| AccountsUser { row })
    }
    async fn users(&self, ctx: &Context<'_>) -> Vec<AccountsUser> {
        ctx.data_unchecked::<Arc<Data>>()
            .users
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(|row| AccountsUser { row })
            .collect()
    }
    #[graphql(entity)]
    async fn find_user(&self, ctx: &Context<'_>, id: ID) -> Option<AccountsUser> {
        ctx.data_unchecked::<Arc<Data>>()
            .user(&id)
            .map(|row| AccountsUser { row })
    }
}

pub struct AccountsMutation;

#[Object(name = "Mutation")]
impl AccountsMutation {
    /// Renames a user; slow on purpose for the first call so that out-of-order execution would show.
    async fn update_name(&self, ctx: &Context<'_>, id: ID, name: String) -> Option<AccountsUser> {
        let data = ctx.data_unchecked::<Arc<Data>>();
        if name.starts_with("slow") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        data.mutation_log.lock().unwrap().push(name.clone());
        let mut users = data.users.lock().unwrap();
        let user = users.iter_mut().find(|u| u.id == *id)?;
        user.name = name;
        Some(AccountsUser { row: user.clone() })
    }
}

// ---- products ----

#[derive(SimpleObject)]
#[graphql(name = "Product")]
pub struct ProductsProduct {
    upc: String,
    name: String,
    price: i64,
    weight: i64,
}

impl From<&ProductRow> for ProductsProduct {
    fn from(p: &ProductRow) -> Self {
        ProductsProduct {
            upc: p.upc.clone(),
            name: p.name.clone(),
            price: p.price,
            weight: p.weight,
        }
    }
}

pub struct ProductsQuery;

#[Object(name = "Query")]
impl ProductsQuery {
    async fn top_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Vec<ProductsProduct> {
        let data = ctx.data_unchecked::<Arc<Data>>();
        data.products
            .iter()
            .take(first.max(0) as usize)
            .map(ProductsProduct::from)
            .collect()
    }
    #[graphql(entity)]
    async fn find_product(&self, ctx: &Context<'_>, upc: String) -> Option<ProductsProduct> {
        ctx.data_unchecked::<Arc<Data>>()
            .product(&upc)
            .map(ProductsProduct::from)
    }
}

// ---- inventory ----

#[derive(SimpleObject)]
#[graphql(name = "Product", complex)]
pub struct InventoryProduct {
    upc: String,
    in_stock: bool,
    #[graphql(skip)]
    price: Option<i64>,
    #[graphql(skip)]
    weight: Option<i64>,
}

#[ComplexObject]
impl InventoryProduct {
    /// Needs `price` and `weight` from the representation (`@requires`).
    async fn shipping_estimate(&self) -> async_graphql::Result<i64> {
        let (Some(price), Some(weight)) = (self.price, self.weight) else {
            return Err("price and weight are required".into());
        };
        Ok(if price > 1000 { 0 } else { weight / 2 })
    }
}

pub struct InventoryQuery;

#[Object(name = "Query")]
impl InventoryQuery {
    #[graphql(entity)]
    async fn find_product(
        &self,
        ctx: &Context<'_>,
        upc: String,
        price: Option<i64>,
        weight: Option<i64>,
    ) -> Option<InventoryProduct> {
        let product = ctx.data_unchecked::<Arc<Data>>().product(&upc)?;
        Some(InventoryProduct {
            upc,
            in_stock: product.in_stock,
            price,
            weight,
        })
    }
}

// ---- reviews ----

pub struct ReviewsReview {
    row: ReviewRow,
    users: Vec<UserRow>,
}

#[Object(name = "Review")]
impl ReviewsReview {
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }
    async fn body(&self) -> &str {
        &self.row.body
    }
    /// `@provides(fields: "username")`: the username comes from here.
    async fn author(&self) -> Option<ReviewsUser> {
        self.users
            .iter()
            .find(|u| u.id == self.row.author_id)
            .map(|u| ReviewsUser {
                id: u.id.clone(),
                username: Some(u.username.clone()),
            })
    }
    async fn product(&self) -> Option<ReviewsProduct> {
        self.row
            .product_upc
            .clone()
            .map(|upc| ReviewsProduct { upc })
    }
}

pub struct ReviewsUser {
    id: String,
    username: Option<String>,
}

#[Object(name = "User")]
impl ReviewsUser {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
    async fn reviews(&self, ctx: &Context<'_>) -> Vec<ReviewsReview> {
        let data = ctx.data_unchecked::<Arc<Data>>();
        let users = data.users.lock().unwrap().clone();
        let ids = users
            .iter()
            .find(|u| u.id == self.id)
            .map(|u| u.review_ids.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| data.review(id))
            .map(|row| ReviewsReview {
                row: row.clone(),
                users: users.clone(),
            })
            .collect()
    }
}

pub struct ReviewsProduct {
    upc: String,
}

#[Object(name = "Product")]
impl ReviewsProduct {
    async fn upc(&self) -> &str {
        &self.upc
    }
    async fn reviews(&self, ctx: &Context<'_>) -> Vec<ReviewsReview> {
        let data = ctx.data_unchecked::<Arc<Data>>();
        let users = data.users.lock().unwrap().clone();
        let ids = data
            .product(&self.upc)
            .map(|p| p.review_ids.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| data.review(id))
            .map(|row| ReviewsReview {
                row: row.clone(),
                users: users.clone(),
            })
            .collect()
    }
}

pub struct ReviewsQuery;

#[Object(name = "Query")]
impl ReviewsQuery {
    #[graphql(entity)]
    async fn find_user(&self, id: ID) -> ReviewsUser {
        ReviewsUser {
            id: id.0,
            username: None,
        }
    }
    #[graphql(entity)]
    async fn find_product(&self, upc: String) -> ReviewsProduct {
        ReviewsProduct { upc }
    }
    #[graphql(entity)]
    async fn find_review(&self, ctx: &Context<'_>, id: ID) -> Option<ReviewsReview> {
        let data = ctx.data_unchecked::<Arc<Data>>();
        let users = data.users.lock().unwrap().clone();
        data.review(&id).map(|row| ReviewsReview {
            row: row.clone(),
            users,
        })
    }
}

// ---- serving with knobs ----

/// How a subgraph answers, switchable while a test runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    Normal = 0,
    /// HTTP 500 with a non-GraphQL body.
    Http500 = 1,
    /// HTTP 200 with a body that is not JSON.
    Garbage = 2,
}

#[derive(Default)]
pub struct Knobs {
    pub calls: AtomicUsize,
    pub delay_ms: AtomicU64,
    mode: AtomicU8,
    pub headers: Mutex<Vec<HeaderMap>>,
    pub bodies: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    /// Highest number of requests this subgraph was handling at once.
    pub max_in_flight: AtomicUsize,
}

impl Knobs {
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

type Execute = Arc<
    dyn Fn(async_graphql::Request) -> futures::future::BoxFuture<'static, async_graphql::Response>
        + Send
        + Sync,
>;

fn executor<Q, M>(schema: Schema<Q, M, EmptySubscription>) -> Execute
where
    Q: async_graphql::ObjectType + 'static,
    M: async_graphql::ObjectType + 'static,
{
    Arc::new(move |request| {
        let schema = schema.clone();
        Box::pin(async move { schema.execute(request).await })
    })
}

async fn handle(
    State((knobs, execute)): State<(Arc<Knobs>, Execute)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    knobs.calls.fetch_add(1, Ordering::SeqCst);
    let now = knobs.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    knobs.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = respond(&knobs, &execute, headers, body).await;
    knobs.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn respond(
    knobs: &Knobs,
    execute: &Execute,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    knobs.headers.lock().unwrap().push(headers);
    knobs
        .bodies
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    let delay = knobs.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match knobs.mode.load(Ordering::SeqCst) {
        1 => return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        2 => return (StatusCode::OK, "<html>not json</html>").into_response(),
        _ => {}
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = execute(request).await;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&response).unwrap(),
    )
        .into_response()
}

/// A running subgraph.
pub struct Running {
    pub name: &'static str,
    pub url: String,
    pub knobs: Arc<Knobs>,
    /// Dropping it fails the test if the subgraph panicked.
    pub _server: MockServer,
}

async fn serve(name: &'static str, execute: Execute) -> Running {
    let knobs = Arc::new(Knobs::default());
    let app = axum::Router::new()
        .route("/graphql", axum::routing::post(handle))
        .with_state((Arc::clone(&knobs), execute));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let server = MockServer::spawn(listener, app, std::future::pending());
    Running {
        name,
        url,
        knobs,
        _server: server,
    }
}

/// Starts the four subgraphs over `data`.
pub async fn start_all(data: Arc<Data>) -> Vec<Running> {
    let accounts = Schema::build(AccountsQuery, AccountsMutation, EmptySubscription)
        .enable_federation()
        .data(Arc::clone(&data))
        .finish();
    let products = Schema::build(
        ProductsQuery,
        async_graphql::EmptyMutation,
        EmptySubscription,
    )
    .enable_federation()
    .data(Arc::clone(&data))
    .finish();
    let inventory = Schema::build(
        InventoryQuery,
        async_graphql::EmptyMutation,
        EmptySubscription,
    )
    .enable_federation()
    .data(Arc::clone(&data))
    .finish();
    let reviews = Schema::build(
        ReviewsQuery,
        async_graphql::EmptyMutation,
        EmptySubscription,
    )
    .enable_federation()
    .data(Arc::clone(&data))
    .finish();
    vec![
        serve("accounts", executor(accounts)).await,
        serve("inventory", executor(inventory)).await,
        serve("products", executor(products)).await,
        serve("reviews", executor(reviews)).await,
    ]
}
