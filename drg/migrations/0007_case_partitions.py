"""drg_case partitioned by region on PostgreSQL (drg.partitions, docs/loading.md).

The three foreign keys into drg_case stop being database constraints first (a partitioned table has
no unique key on id alone to back them). Then, on PostgreSQL only, the plain table is renamed aside,
drg_case is created again, partitioned by LIST (region_id), with the same columns, checks, identity
and indexes (its primary key and case-number key carrying region_id), one table per region is
attached, the rows are moved over with their ids, and the identity sequence goes on from where it
was. The reverse builds the plain table again the same way. SQLite keeps its plain table.
"""

from django.db import migrations, models
import django.db.models.deletion

# name in the partitioned table -> (columns of the plain table, columns of the partitioned one)
KEYS = {"case_no_unique_per_institution": ("institution_id, case_no", "institution_id, case_no, region_id")}
INDEXES = {"case_pool_period_idx": "region_id, fund, discharge_date", "case_patient_idx": "patient_id"}


def _one(cursor, sql, params=()):
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return row[0] if row else None


def _rebuild(cursor, partitioned: bool) -> None:
    """Move drg_case into a new table of the other layout, keeping names, rows, ids and sequence."""
    old = "drg_case_before"
    fk = _one(cursor, "SELECT conname FROM pg_constraint WHERE conrelid = 'drg_case'::regclass AND contype = 'f' "
                      "AND confrelid = 'drg_institution'::regclass")
    pk = _one(cursor, "SELECT conname FROM pg_constraint WHERE conrelid = 'drg_case'::regclass AND contype = 'p'")
    sequence = _one(cursor, "SELECT pg_get_serial_sequence('drg_case', 'id')")
    cursor.execute(f"ALTER TABLE drg_case RENAME TO {old}")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {pk} TO {old}_pkey")
    for name in KEYS:
        cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {name} TO {old}_{name}")
    for name in INDEXES:
        cursor.execute(f"ALTER INDEX {name} RENAME TO {old}_{name}")
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {old}_id_seq")
    cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {fk} TO {old}_institution_fk")

    layout = " PARTITION BY LIST (region_id)" if partitioned else ""
    cursor.execute(f"CREATE TABLE drg_case (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY){layout}")
    cursor.execute(f"ALTER TABLE drg_case ADD CONSTRAINT drg_case_pkey PRIMARY KEY ({'id, region_id' if partitioned else 'id'})")
    for name, (plain, parted) in KEYS.items():
        cursor.execute(f"ALTER TABLE drg_case ADD CONSTRAINT {name} UNIQUE ({parted if partitioned else plain})")
    for name, columns in INDEXES.items():
        cursor.execute(f"CREATE INDEX {name} ON drg_case ({columns})")
    cursor.execute(f"ALTER TABLE drg_case ADD CONSTRAINT {fk} FOREIGN KEY (institution_id) "
                   "REFERENCES drg_institution (id) DEFERRABLE INITIALLY DEFERRED")
    if partitioned:
        cursor.execute(f"SELECT id FROM drg_region UNION SELECT DISTINCT region_id FROM {old} ORDER BY 1")
        for (region_id,) in cursor.fetchall():
            name = f"drg_case_r{int(region_id)}"
            cursor.execute(f"CREATE TABLE {name} (LIKE drg_case INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {name}_region CHECK (region_id = {int(region_id)})")
            cursor.execute(f"ALTER TABLE drg_case ATTACH PARTITION {name} FOR VALUES IN ({int(region_id)})")
    cursor.execute("SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                   f"WHERE attrelid = '{old}'::regclass AND attnum > 0 AND NOT attisdropped")
    columns = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO drg_case ({columns}) SELECT {columns} FROM {old}")
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('drg_case', 'id'), last_value, is_called) FROM {old}_id_seq")
    cursor.execute(f"DROP TABLE {old} CASCADE")  # the old partitions with it


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _one(cursor, "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'drg_case'::regclass)"):
            _rebuild(cursor, partitioned=True)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _one(cursor, "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'drg_case'::regclass)"):
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):

    dependencies = [
        ('drg', '0006_labels_in_chinese'),
    ]

    operations = [
        migrations.AlterField(
            model_name='casecorrection',
            name='case',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='corrections', to='drg.case', verbose_name='病例'),
        ),
        migrations.AlterField(
            model_name='correctionrequest',
            name='case',
            field=models.ForeignKey(blank=True, db_constraint=False, help_text='要更正的病例；补报病例为批准后新建的病例', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='correction_requests', to='drg.case', verbose_name='病例'),
        ),
        migrations.AlterField(
            model_name='specialreview',
            name='case',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='special_review', to='drg.case', verbose_name='病例'),
        ),
        migrations.RunPython(forward, backward),
    ]
