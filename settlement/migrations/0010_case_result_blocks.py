"""A run's per-case results move from one row per case (CaseResult) to one compressed Parquet block
per (run, institution) (CaseResultBlock, docs/storage.md). Stored results are converted both ways,
value for value; nothing is recomputed."""

import django.db.models.deletion
from django.db import migrations, models

from settlement.domain import results as blocks

_FIELDS = ("case_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
           "readmission_halved", "points_before_readmission", "points")


def _units(value):
    return None if value is None else int(value.scaleb(4))


def rows_to_blocks(apps, schema_editor):
    import pandas as pd

    CaseResult = apps.get_model("settlement", "CaseResult")
    Block = apps.get_model("settlement", "CaseResultBlock")
    pairs = CaseResult.objects.values_list("run_id", "institution_id").distinct().order_by("run_id", "institution_id")
    for run_id, institution_id in list(pairs):
        rows = list(CaseResult.objects.filter(run_id=run_id, institution_id=institution_id).order_by("case_id").values_list(*_FIELDS))
        frame = pd.DataFrame.from_records(rows, columns=list(_FIELDS))
        for name in blocks.UNIT_COLUMNS:
            frame[name] = pd.array([_units(v) for v in frame[name]], dtype="Int64")
        Block.objects.create(run_id=run_id, institution_id=institution_id, cases=len(frame), data=blocks.encode_block(frame))


def blocks_to_rows(apps, schema_editor):
    CaseResult = apps.get_model("settlement", "CaseResult")
    Block = apps.get_model("settlement", "CaseResultBlock")
    for block in Block.objects.order_by("run_id", "institution_id").iterator():
        frame = blocks.as_decimals(blocks.decode_block(block.data))
        CaseResult.objects.bulk_create(
            [CaseResult(run_id=block.run_id, institution_id=block.institution_id, **record)
             for record in frame.astype(object).where(frame.notna(), None).to_dict("records")],
            batch_size=5000,
        )


def store_out_of_line(apps, schema_editor):
    """The blocks are compressed already: PostgreSQL keeps them out of line without compressing again."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE settlement_caseresultblock ALTER COLUMN data SET STORAGE EXTERNAL")


class Migration(migrations.Migration):

    dependencies = [
        ('drg', '0006_labels_in_chinese'),
        ('settlement', '0009_labels_in_chinese'),
    ]

    operations = [
        migrations.CreateModel(
            name='CaseResultBlock',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('cases', models.PositiveIntegerField(verbose_name='病例数')),
                ('data', models.BinaryField(verbose_name='计点结果（列式压缩）')),
                ('institution', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='drg.institution', verbose_name='定点医疗机构')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='result_blocks', to='settlement.clearingrun', verbose_name='清算批次')),
            ],
            options={
                'verbose_name': '病例计点结果块',
                'verbose_name_plural': '病例计点结果块',
                'ordering': ['run', 'institution'],
                'constraints': [models.UniqueConstraint(fields=('run', 'institution'), name='case_result_block_run_inst')],
            },
        ),
        migrations.RunPython(store_out_of_line, migrations.RunPython.noop),
        migrations.RunPython(rows_to_blocks, blocks_to_rows),
        migrations.DeleteModel(name='CaseResult'),
    ]
