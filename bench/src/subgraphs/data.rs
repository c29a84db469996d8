//! The benchmark's static data set, read off `workload/expected_response.json`.
//!
//! Each subgraph owns a slice of it (accounts: users; products: catalogue; inventory: stock;
//! reviews: reviews plus the author usernames it `@provides`). Two quirks of the public workload are
//! reproduced on purpose so that a correct router returns exactly the published response: every review
//! is written by user 1, and every user's `reviews` list is reviews 1 and 2.

/// A user of the accounts subgraph.
#[derive(Debug)]
pub struct UserRow {
    pub id: &'static str,
    pub name: &'static str,
    pub username: &'static str,
    pub birthday: i32,
}

/// A product of the products subgraph (the catalogue).
#[derive(Debug)]
pub struct ProductRow {
    pub upc: &'static str,
    pub name: &'static str,
    pub price: i32,
    pub weight: i32,
    pub notes: &'static str,
    pub internal: &'static str,
}

/// A stock line of the inventory subgraph.
#[derive(Debug)]
pub struct StockRow {
    pub upc: &'static str,
    pub in_stock: bool,
}

/// A review of the reviews subgraph.
#[derive(Debug)]
pub struct ReviewRow {
    pub id: &'static str,
    pub body: &'static str,
    pub product_upc: &'static str,
    pub author_id: &'static str,
    /// Denormalized copy of the author's username: what `Review.author @provides(fields: "username")`
    /// lets the reviews subgraph answer without a trip to accounts.
    pub author_username: &'static str,
}

pub const USERS: &[UserRow] = &[
    user("1", "Uri Goldshtein", "urigo"),
    user("2", "Dotan Simha", "dotansimha"),
    user("3", "Kamil Kisiela", "kamilkisiela"),
    user("4", "Arda Tanrikulu", "ardatan"),
    user("5", "Gil Gardosh", "gilgardosh"),
    user("6", "Laurin Quast", "laurin"),
];

pub const PRODUCTS: &[ProductRow] = &[
    product(
        "1",
        "Table",
        899,
        100,
        "Notes for table",
        "Internal for table",
    ),
    product(
        "2",
        "Couch",
        1299,
        1000,
        "Notes for couch",
        "Internal for couch",
    ),
    product(
        "3",
        "Glass",
        15,
        20,
        "Notes for glass",
        "Internal for glass",
    ),
    product(
        "4",
        "Chair",
        499,
        100,
        "Notes for chair",
        "Internal for chair",
    ),
    product("5", "TV", 1299, 1000, "Notes for TV", "Internal for TV"),
];

pub const STOCK: &[StockRow] = &[
    StockRow {
        upc: "1",
        in_stock: true,
    },
    StockRow {
        upc: "2",
        in_stock: false,
    },
    StockRow {
        upc: "3",
        in_stock: false,
    },
    StockRow {
        upc: "4",
        in_stock: false,
    },
    StockRow {
        upc: "5",
        in_stock: true,
    },
];

pub const REVIEWS: &[ReviewRow] = &[
    review("1", LOREM, "1"),
    review("2", SED_UT, "1"),
    review("3", SED_QUIA, "1"),
    review("4", UT_ENIM, "1"),
    review("5", LOREM, "2"),
    review("6", SED_UT, "2"),
    review("7", SED_QUIA, "2"),
    review("8", UT_ENIM, "2"),
    review("9", UT_ENIM, "3"),
    review("10", UT_ENIM, "4"),
    review("11", AT_VERO, "4"),
];

/// The reviews every user's `reviews` field lists (the public workload's fixed answer).
pub const REVIEWS_OF_EVERY_USER: &[&str] = &["1", "2"];

/// How many products `topProducts` lists when the client does not say.
pub const DEFAULT_TOP_PRODUCTS: i32 = 5;

/// An item of `Query.feed`, the union the varied workload adds (the published workload has no
/// abstract type): reviews owns the list, while the members' fields live in every subgraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEntry {
    /// A review, by id.
    Review(&'static str),
    /// A product, by upc.
    Product(&'static str),
    /// A user, by id.
    User(&'static str),
}

/// The feed, in order: the three member types interleaved, so that any prefix mixes them.
pub const FEED: &[FeedEntry] = &[
    FeedEntry::Review("3"),
    FeedEntry::Product("2"),
    FeedEntry::User("2"),
    FeedEntry::Review("11"),
    FeedEntry::Product("5"),
    FeedEntry::User("4"),
    FeedEntry::Review("6"),
    FeedEntry::Product("1"),
    FeedEntry::User("6"),
    FeedEntry::Review("9"),
    FeedEntry::Product("3"),
    FeedEntry::User("1"),
    FeedEntry::Review("1"),
    FeedEntry::Product("4"),
    FeedEntry::User("3"),
];

/// How many feed items `feed` lists when the client does not say.
pub const DEFAULT_FEED_LENGTH: i32 = 6;

pub fn user_by_id(id: &str) -> Option<&'static UserRow> {
    USERS.iter().find(|u| u.id == id)
}

pub fn product_by_upc(upc: &str) -> Option<&'static ProductRow> {
    PRODUCTS.iter().find(|p| p.upc == upc)
}

pub fn stock_by_upc(upc: &str) -> Option<&'static StockRow> {
    STOCK.iter().find(|s| s.upc == upc)
}

pub fn review_by_id(id: &str) -> Option<&'static ReviewRow> {
    REVIEWS.iter().find(|r| r.id == id)
}

pub fn reviews_of_product(upc: &str) -> impl Iterator<Item = &'static ReviewRow> + use<'_> {
    REVIEWS.iter().filter(move |r| r.product_upc == upc)
}

pub fn reviews_of_every_user() -> impl Iterator<Item = &'static ReviewRow> {
    REVIEWS_OF_EVERY_USER
        .iter()
        .filter_map(|id| review_by_id(id))
}

/// The first `first` products of the catalogue; a negative count lists none.
pub fn top_products(first: i32) -> impl Iterator<Item = &'static ProductRow> {
    PRODUCTS.iter().take(usize::try_from(first).unwrap_or(0))
}

/// The first `first` feed items (by default [`DEFAULT_FEED_LENGTH`]); a negative count lists none.
pub fn feed(first: Option<i32>) -> impl Iterator<Item = FeedEntry> {
    let first = first.unwrap_or(DEFAULT_FEED_LENGTH);
    FEED.iter()
        .copied()
        .take(usize::try_from(first).unwrap_or(0))
}

/// Inventory's shipping rule: expensive items ship free, others cost half their weight. Either input
/// missing means the estimate is unknown.
pub fn shipping_estimate(price: Option<i32>, weight: Option<i32>) -> Option<i32> {
    let price = price?;
    if price > 1000 {
        return Some(0);
    }
    weight.map(|w| w / 2)
}

const fn user(id: &'static str, name: &'static str, username: &'static str) -> UserRow {
    UserRow {
        id,
        name,
        username,
        birthday: 1_234_567_890,
    }
}

const fn product(
    upc: &'static str,
    name: &'static str,
    price: i32,
    weight: i32,
    notes: &'static str,
    internal: &'static str,
) -> ProductRow {
    ProductRow {
        upc,
        name,
        price,
        weight,
        notes,
        internal,
    }
}

const fn review(id: &'static str, body: &'static str, product_upc: &'static str) -> ReviewRow {
    ReviewRow {
        id,
        body,
        product_upc,
        author_id: "1",
        author_username: "urigo",
    }
}

const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.";
const SED_UT: &str = "Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae dicta sunt explicabo. Nemo enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugi";
const SED_QUIA: &str = "sed quia consequuntur magni dolores eos qui ratione voluptatem sequi nesciunt. Neque porro quisquam est, qui dolorem ipsum quia dolor sit amet, consectetur, adipisci velit, sed quia non numquam eius modi tempora incidunt ut labore et dolore magnam aliquam quaerat voluptatem.";
const UT_ENIM: &str = "Ut enim ad minima veniam, quis nostrum exercitationem ullam corporis suscipit laboriosam, nisi ut aliquid ex ea commodi consequatur? Quis autem";
const AT_VERO: &str = "At vero eos et accusamus et iusto odio dignissimos ducimus qui blanditiis praesentium voluptatum deleniti atque corrupti quos dolores et quas molestias excepturi sint occaecati cupiditate non provident, similique sunt in culpa qui officia deserunt mollitia animi, id est laborum et dolorum fuga. Et harum quidem rerum facilis est et expedita distinctio. Nam libero tempore, cum soluta nobis est eligendi optio cumque nihil impedit quo minus id quod maxime placeat facere possimus, omnis voluptas assumenda est, omnis dolor repellendus. Temporibus autem quibusdam et aut officiis debitis aut rerum necessitatibus saepe eveniet ut et voluptates repudiandae sint et molestiae non recusandae. Itaque earum rerum hic tenetur a sapiente delectus, ut aut reiciendis voluptatibus maiores alias consequatur aut perferendis doloribus asperiores repellat.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipping_is_free_above_1000_and_half_the_weight_otherwise() {
        assert_eq!(shipping_estimate(Some(1299), Some(1000)), Some(0));
        assert_eq!(shipping_estimate(Some(899), Some(100)), Some(50));
        assert_eq!(shipping_estimate(Some(1000), Some(20)), Some(10));
        assert_eq!(shipping_estimate(None, Some(20)), None);
        assert_eq!(shipping_estimate(Some(15), None), None);
    }

    #[test]
    fn top_products_clamps_its_count() {
        assert_eq!(
            top_products(2).map(|p| p.upc).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(top_products(100).count(), PRODUCTS.len());
        assert_eq!(top_products(-1).count(), 0);
    }

    #[test]
    fn every_reference_resolves() {
        for review in REVIEWS {
            assert!(
                product_by_upc(review.product_upc).is_some(),
                "review {}",
                review.id
            );
            let author = user_by_id(review.author_id).expect("author exists");
            assert_eq!(
                author.username, review.author_username,
                "provided username matches accounts"
            );
        }
        for product in PRODUCTS {
            assert!(
                stock_by_upc(product.upc).is_some(),
                "stock for {}",
                product.upc
            );
        }
        assert_eq!(reviews_of_every_user().count(), REVIEWS_OF_EVERY_USER.len());
        for entry in FEED {
            let found = match *entry {
                FeedEntry::Review(id) => review_by_id(id).is_some(),
                FeedEntry::Product(upc) => product_by_upc(upc).is_some(),
                FeedEntry::User(id) => user_by_id(id).is_some(),
            };
            assert!(found, "feed entry {entry:?}");
        }
    }

    #[test]
    fn feed_clamps_its_count_and_mixes_its_members() {
        assert_eq!(feed(Some(-1)).count(), 0);
        assert_eq!(feed(None).count() as i32, DEFAULT_FEED_LENGTH);
        assert_eq!(feed(Some(100)).count(), FEED.len());
        let first_three: Vec<_> = feed(Some(3)).collect();
        assert!(matches!(
            first_three[..],
            [
                FeedEntry::Review(_),
                FeedEntry::Product(_),
                FeedEntry::User(_)
            ]
        ));
    }
}
