"""The run database's rows: taskflow's SQL schema on SQLite and the
conversion between a row and taskflow's models.

The tables and columns are the ones taskflow's SQL backend creates on SQLite
and the values are encoded as it encodes them (JSON text,
``YYYY-MM-DD HH:MM:SS.ffffff`` times), so a run database written by either
backend reads with the other.
"""

import datetime

from oslo_serialization import jsonutils
from taskflow.persistence import models

SCHEMA = """
CREATE TABLE IF NOT EXISTS logbooks (
    created_at DATETIME,
    updated_at DATETIME,
    meta TEXT,
    name VARCHAR(255),
    uuid VARCHAR(64) NOT NULL,
    PRIMARY KEY (uuid),
    UNIQUE (uuid)
);
CREATE TABLE IF NOT EXISTS flowdetails (
    created_at DATETIME,
    updated_at DATETIME,
    parent_uuid VARCHAR(64),
    meta TEXT,
    name VARCHAR(255),
    state VARCHAR(255),
    uuid VARCHAR(64) NOT NULL,
    PRIMARY KEY (uuid),
    FOREIGN KEY(parent_uuid) REFERENCES logbooks (uuid) ON DELETE CASCADE,
    UNIQUE (uuid)
);
CREATE TABLE IF NOT EXISTS atomdetails (
    created_at DATETIME,
    updated_at DATETIME,
    meta TEXT,
    parent_uuid VARCHAR(64),
    name VARCHAR(255),
    version VARCHAR(64),
    state VARCHAR(255),
    uuid VARCHAR(64) NOT NULL,
    failure TEXT,
    results TEXT,
    revert_results TEXT,
    revert_failure TEXT,
    atom_type VARCHAR(12),
    intention VARCHAR(7),
    PRIMARY KEY (uuid),
    FOREIGN KEY(parent_uuid) REFERENCES flowdetails (uuid) ON DELETE CASCADE,
    UNIQUE (uuid)
);
"""

#: columns holding JSON text
JSON_COLUMNS = ('meta', 'failure', 'results', 'revert_results',
                'revert_failure')
TIME_FORMAT = '%Y-%m-%d %H:%M:%S.%f'


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)


def decode(row):
    values = dict(row)
    for column in JSON_COLUMNS:
        if values.get(column) is not None:
            values[column] = jsonutils.loads(values[column])
    for column in ('created_at', 'updated_at'):
        if values.get(column) is not None:
            values[column] = datetime.datetime.fromisoformat(values[column])
    return values


def encode(values):
    values = dict(values)
    for column in JSON_COLUMNS:
        if values.get(column) is not None:
            values[column] = jsonutils.dumps(values[column])
    for column in ('created_at', 'updated_at'):
        if isinstance(values.get(column), datetime.datetime):
            values[column] = values[column].strftime(TIME_FORMAT)
    return values


def book(row):
    return models.LogBook.from_dict(decode(row))


def flow(row):
    return models.FlowDetail.from_dict(decode(row))


def atom(row):
    values = decode(row)
    return models.atom_detail_class(values.pop('atom_type')).from_dict(values)
