// Every GraphQL operation the Shippy web UI sends. Kept apart from app.js so that one list can be
// enumerated (`allOperations`): the router's first-party manifest (persisted-documents.json) is
// generated from it, and the client sends each operation by its document id.

export const ME = "query Me { me { id name email } }";
export const REGISTER = `mutation Register($input: RegisterInput!) { register(input: $input) { token user { id name email } } }`;
export const LOGIN = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token user { id name email } } }`;
const VESSEL_FIELDS = "id name capacity maxWeight remainingCapacity remainingWeight available createdAt owner { id name }";
export const VESSELS = `query Vessels($after: ID) { vessels(first: 100, after: $after) { ${VESSEL_FIELDS} } }`;
export const CREATE_VESSEL = `mutation CreateVessel($input: CreateVesselInput!) { createVessel(input: $input) { ${VESSEL_FIELDS} } }`;
export const ACTIVITY = `query Activity { me { activity(first: 100) { id kind message payload createdAt } } }`;
export const LOG_ADDED = `subscription LogAdded { logAdded { id kind message payload createdAt } }`;
/** What this API version offers beyond the basics (fields added later; a query naming a missing field fails whole). */
export const FEATURES = `query Features { consignment: __type(name: "Consignment") { fields { name } } mutation: __type(name: "Mutation") { fields { name } } }`;

/** A consignment's fields; `features.reason`: the API has `unassignableReason`. */
function consignmentFields(features) {
  const reason = features.reason ? " unassignableReason" : "";
  return `id description weight status createdAt updatedAt containers { customerId origin } vessel { id name owner { id } }${reason}`;
}
export const consignmentsQuery = (f) => `query Consignments($after: ID) { consignments(first: 100, after: $after) { ${consignmentFields(f)} } }`;
export const createConsignment = (f) => `mutation CreateConsignment($input: CreateConsignmentInput!) { createConsignment(input: $input) { ${consignmentFields(f)} } }`;
export const updateStatus = (f) => `mutation UpdateStatus($id: ID!, $status: ConsignmentStatus!) { updateConsignmentStatus(id: $id, status: $status) { ${consignmentFields(f)} } }`;
export const retryConsignment = (f) => `mutation Retry($id: ID!) { retryConsignment(id: $id) { ${consignmentFields(f)} } }`;
export const cancelConsignment = (f) => `mutation Cancel($id: ID!) { cancelConsignment(id: $id) { ${consignmentFields(f)} } }`;
export const consignmentUpdated = (f) => `subscription ConsignmentUpdated { consignmentUpdated { ${consignmentFields(f)} } }`;

/** Every operation text the UI can send, for every combination of API features. */
export function allOperations() {
  const fixed = [ME, REGISTER, LOGIN, VESSELS, CREATE_VESSEL, ACTIVITY, LOG_ADDED, FEATURES];
  const built = [consignmentsQuery, createConsignment, updateStatus, retryConsignment, cancelConsignment, consignmentUpdated];
  const variants = [{ reason: false }, { reason: true }].flatMap((features) => built.map((operation) => operation(features)));
  return [...fixed, ...variants];
}
