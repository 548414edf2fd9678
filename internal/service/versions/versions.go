// Package versions holds the version numbers of what the crash service
// exchanges with others: the dashboard's JSON API and the alerts posted to
// webhooks. They live in a package of their own, with no dependencies, so
// that the command line (`coroner version --json`) reports them without
// linking the service (its database drivers and web server).
package versions

// API is the version of the dashboard's JSON API under /api/v1/: fields
// are only added within a version.
const API = 1

// Alert is the version of an alert's JSON form (its "schema" field,
// docs/schema/alert.json); it changes only when a field changes meaning or
// goes away.
const Alert = 1
