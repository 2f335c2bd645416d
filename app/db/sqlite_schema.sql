-- head: 0009
-- migrations sha256: d3b1dac109ed1246a2eab9b0687850b601ef7761a9737eabf30a7a59bbff8144
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE datasets (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	root TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	item_count INTEGER NOT NULL, 
	annotation_count INTEGER NOT NULL, 
	options JSON NOT NULL, 
	facet_counts JSON NOT NULL, 
	ingest_generation INTEGER NOT NULL, 
	problems JSON NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_datasets PRIMARY KEY (id), 
	CONSTRAINT uq_datasets_name UNIQUE (name)
);
CREATE TABLE jobs (
	id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	params JSON NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	done INTEGER NOT NULL, 
	total INTEGER NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	heartbeat_at DATETIME, 
	CONSTRAINT pk_jobs PRIMARY KEY (id)
);
CREATE TABLE patients (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	external_id VARCHAR(128) NOT NULL, 
	sex VARCHAR(8), 
	CONSTRAINT pk_patients PRIMARY KEY (id), 
	CONSTRAINT fk_patients_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT uq_patients_dataset_id_external_id UNIQUE (dataset_id, external_id)
);
CREATE TABLE studies (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	patient_id INTEGER NOT NULL, 
	external_id VARCHAR(128) NOT NULL, 
	study_order INTEGER, 
	age FLOAT, 
	CONSTRAINT pk_studies PRIMARY KEY (id), 
	CONSTRAINT fk_studies_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_studies_patient_id_patients FOREIGN KEY(patient_id) REFERENCES patients (id) ON DELETE CASCADE, 
	CONSTRAINT uq_studies_dataset_id_external_id UNIQUE (dataset_id, external_id)
);
CREATE INDEX ix_studies_patient_id ON studies (patient_id);
CREATE TABLE items (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	"key" VARCHAR(512) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	split VARCHAR(32), 
	label VARCHAR(128), 
	sex VARCHAR(8), 
	age FLOAT, 
	patient_id INTEGER, 
	study_id INTEGER, 
	series_id INTEGER, 
	width INTEGER, 
	height INTEGER, 
	depth INTEGER, 
	spacing JSON, 
	window JSON, 
	location TEXT NOT NULL, 
	location_index INTEGER, 
	meta JSON NOT NULL, 
	fingerprint VARCHAR(64) NOT NULL, 
	content_version INTEGER NOT NULL, 
	review_status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_items PRIMARY KEY (id), 
	CONSTRAINT fk_items_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_items_patient_id_patients FOREIGN KEY(patient_id) REFERENCES patients (id), 
	CONSTRAINT fk_items_series_id_series FOREIGN KEY(series_id) REFERENCES series (id), 
	CONSTRAINT fk_items_study_id_studies FOREIGN KEY(study_id) REFERENCES studies (id), 
	CONSTRAINT uq_items_dataset_id_key UNIQUE (dataset_id, "key")
);
CREATE TABLE annotations (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	label VARCHAR(128), 
	geometry JSON NOT NULL, 
	meta JSON NOT NULL, 
	slice_index INTEGER, 
	source VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	created_by VARCHAR(128), 
	superseded_by INTEGER, 
	created_at DATETIME NOT NULL, lineage_id INTEGER, retired_at DATETIME, retired_by VARCHAR(128), 
	CONSTRAINT pk_annotations PRIMARY KEY (id), 
	CONSTRAINT fk_annotations_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_annotations_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	CONSTRAINT fk_annotations_superseded_by_annotations FOREIGN KEY(superseded_by) REFERENCES annotations (id)
);
CREATE INDEX ix_annotations_dataset_id ON annotations (dataset_id);
CREATE INDEX ix_annotations_item_id ON annotations (item_id);
CREATE TABLE item_facets (
	item_id INTEGER NOT NULL, 
	field VARCHAR(64) NOT NULL, 
	value VARCHAR(128) NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	CONSTRAINT pk_item_facets PRIMARY KEY (item_id, field, value), 
	CONSTRAINT fk_item_facets_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_item_facets_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE
);
CREATE INDEX ix_item_facets_lookup ON item_facets (dataset_id, field, value, item_id);
CREATE INDEX ix_items_split ON items (dataset_id, split, id);
CREATE INDEX ix_items_label ON items (dataset_id, label, id);
CREATE INDEX ix_items_patient ON items (patient_id) WHERE patient_id IS NOT NULL;
CREATE INDEX ix_items_sex ON items (dataset_id, sex, id) WHERE sex IS NOT NULL;
CREATE INDEX ix_items_series ON items (series_id) WHERE series_id IS NOT NULL;
CREATE TABLE "series" (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	study_id INTEGER, 
	external_id VARCHAR(128) NOT NULL, 
	meta JSON NOT NULL, 
	CONSTRAINT pk_series PRIMARY KEY (id), 
	CONSTRAINT uq_series_dataset_id_external_id UNIQUE (dataset_id, external_id), 
	CONSTRAINT fk_series_study_id_studies FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE, 
	CONSTRAINT fk_series_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
);
CREATE INDEX ix_series_study_id ON series (study_id);
CREATE TABLE models (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	task VARCHAR(32) NOT NULL, 
	runtime VARCHAR(16) NOT NULL, 
	path TEXT NOT NULL, 
	card JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_models PRIMARY KEY (id), 
	CONSTRAINT uq_models_name UNIQUE (name)
);
CREATE TABLE predictions (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	outputs JSON NOT NULL, 
	metrics JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_predictions PRIMARY KEY (id), 
	CONSTRAINT fk_predictions_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	CONSTRAINT fk_predictions_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE, 
	CONSTRAINT uq_predictions_item_id_model_id UNIQUE (item_id, model_id)
);
CREATE INDEX ix_predictions_model_id ON predictions (model_id);
CREATE TABLE item_metrics (
	item_id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	value FLOAT NOT NULL, 
	CONSTRAINT pk_item_metrics PRIMARY KEY (item_id, model_id, name), 
	CONSTRAINT fk_item_metrics_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	CONSTRAINT fk_item_metrics_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);
CREATE INDEX ix_item_metrics_model_name_value ON item_metrics (model_id, name, value, item_id);
CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	username_key VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	password_hash VARCHAR(255) NOT NULL, 
	disabled BOOLEAN NOT NULL, 
	session_epoch INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	password_changed_at DATETIME NOT NULL, 
	CONSTRAINT pk_users PRIMARY KEY (id), 
	CONSTRAINT ck_users_role CHECK (role IN ('viewer', 'annotator', 'reviewer', 'admin')), 
	CONSTRAINT ck_users_username_key CHECK (username_key = lower(username)), 
	CONSTRAINT uq_users_username_key UNIQUE (username_key)
);
CREATE TABLE api_tokens (
	id INTEGER NOT NULL, 
	user_id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	prefix VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_used_at DATETIME, 
	revoked_at DATETIME, 
	CONSTRAINT pk_api_tokens PRIMARY KEY (id), 
	CONSTRAINT fk_api_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, 
	CONSTRAINT uq_api_tokens_token_hash UNIQUE (token_hash)
);
CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id);
CREATE TABLE audit_events (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor_id INTEGER, 
	actor_name VARCHAR(64) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	target_type VARCHAR(32), 
	target_id VARCHAR(128), 
	"before" JSON, 
	"after" JSON, 
	address VARCHAR(64), 
	CONSTRAINT pk_audit_events PRIMARY KEY (id), 
	CONSTRAINT fk_audit_events_actor_id_users FOREIGN KEY(actor_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_audit_events_at ON audit_events (at);
CREATE INDEX ix_audit_events_actor_name ON audit_events (actor_name);
CREATE INDEX ix_audit_events_action ON audit_events (action);
CREATE INDEX ix_audit_events_target ON audit_events (target_type, target_id);
CREATE INDEX ix_annotations_lineage ON annotations (lineage_id) WHERE lineage_id IS NOT NULL;
CREATE INDEX ix_items_review_status ON items (dataset_id, review_status, id);
CREATE TABLE comments (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	annotation_id INTEGER, 
	author_id INTEGER, 
	author VARCHAR(64) NOT NULL, 
	text TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_comments PRIMARY KEY (id), 
	CONSTRAINT fk_comments_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE SET NULL, 
	CONSTRAINT fk_comments_author_id_users FOREIGN KEY(author_id) REFERENCES users (id) ON DELETE SET NULL, 
	CONSTRAINT fk_comments_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE
);
CREATE INDEX ix_comments_item_id ON comments (item_id);
CREATE TABLE review_queues (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	filters JSON NOT NULL, 
	sort VARCHAR(128), 
	readers_per_item INTEGER NOT NULL, 
	assignees JSON NOT NULL, 
	created_by VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, signed_off_by VARCHAR(64), signed_off_at DATETIME, source_queue_id INTEGER, 
	CONSTRAINT pk_review_queues PRIMARY KEY (id), 
	CONSTRAINT ck_review_queues_readers_per_item CHECK (readers_per_item IN (1, 2)), 
	CONSTRAINT fk_review_queues_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
);
CREATE INDEX ix_review_queues_dataset_id ON review_queues (dataset_id);
CREATE TABLE review_queue_items (
	queue_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	CONSTRAINT pk_review_queue_items PRIMARY KEY (queue_id, position), 
	CONSTRAINT fk_review_queue_items_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	CONSTRAINT fk_review_queue_items_queue_id_review_queues FOREIGN KEY(queue_id) REFERENCES review_queues (id) ON DELETE CASCADE
);
CREATE INDEX ix_review_queue_items_item_id ON review_queue_items (item_id);
CREATE TABLE reviews (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	queue_id INTEGER, 
	annotation_id INTEGER, 
	reviewer_id INTEGER, 
	reviewer VARCHAR(64) NOT NULL, 
	verdict VARCHAR(16) NOT NULL, 
	comment TEXT, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_reviews PRIMARY KEY (id), 
	CONSTRAINT ck_reviews_verdict CHECK (verdict IN ('accept', 'reject', 'uncertain', 'corrected')), 
	CONSTRAINT fk_reviews_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE SET NULL, 
	CONSTRAINT fk_reviews_item_id_items FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE, 
	CONSTRAINT fk_reviews_queue_id_review_queues FOREIGN KEY(queue_id) REFERENCES review_queues (id) ON DELETE SET NULL, 
	CONSTRAINT fk_reviews_reviewer_id_users FOREIGN KEY(reviewer_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_reviews_item_id ON reviews (item_id);
CREATE INDEX ix_reviews_queue_reader ON reviews (queue_id, reviewer_id, item_id);
CREATE TABLE facet_changes (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_facet_changes PRIMARY KEY (id), 
	CONSTRAINT fk_facet_changes_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
);
CREATE INDEX ix_facet_changes_dataset ON facet_changes (dataset_id, id);
CREATE INDEX ix_annotations_user_current ON annotations (dataset_id, item_id) WHERE source LIKE 'user:%' AND superseded_by IS NULL AND retired_at IS NULL;
