//! The Shippy federation router: supergraph in, plans executed against subgraphs, GraphQL over HTTP out.
