//! The products subgraph: the catalogue (names, prices, weights) and `topProducts`.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

use super::data::{self, ProductRow};

pub type ProductsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

pub fn schema() -> ProductsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

pub struct Query;

#[Object]
impl Query {
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

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        data::product_by_upc(&upc).map(Product)
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
}
