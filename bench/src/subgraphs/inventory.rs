//! The inventory subgraph: stock and `shippingEstimate`, which `@requires` the product's price and
//! weight (owned by products) and so can only be resolved from what the router passes in.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

use super::data::{self, StockRow};

pub type InventorySchema = Schema<Query, EmptyMutation, EmptySubscription>;

pub fn schema() -> InventorySchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

pub struct Query;

#[Object]
impl Query {
    /// `price` and `weight` are not part of the key: they are the `@requires` fields, present in the
    /// representation only when the router fetched them first.
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        #[graphql(key)] upc: String,
        price: Option<i32>,
        weight: Option<i32>,
    ) -> Option<Product> {
        data::stock_by_upc(&upc).map(|stock| Product {
            stock,
            price,
            weight,
        })
    }
}

pub struct Product {
    stock: &'static StockRow,
    price: Option<i32>,
    weight: Option<i32>,
}

#[Object]
impl Product {
    async fn upc(&self) -> &'static str {
        self.stock.upc
    }

    #[graphql(external)]
    async fn weight(&self) -> Option<i32> {
        self.weight
    }

    #[graphql(external)]
    async fn price(&self) -> Option<i32> {
        self.price
    }

    async fn in_stock(&self) -> Option<bool> {
        Some(self.stock.in_stock)
    }

    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> Option<i32> {
        data::shipping_estimate(self.price, self.weight)
    }
}
