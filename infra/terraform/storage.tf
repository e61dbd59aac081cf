# Two buckets: code (deployment bundles under bundles/, and the Lambda package under lambda/; versioned so a bad
# upload can be rolled back) and results (persisted task and flow results under results/). Both encrypted,
# closed to the public, owned by the account (ACLs off), and only reachable over TLS 1.2+.

resource "aws_s3_bucket" "code" {
  bucket        = local.code_bucket_name
  force_destroy = var.force_destroy_buckets
}

resource "aws_s3_bucket" "results" {
  bucket        = local.results_bucket_name
  force_destroy = var.force_destroy_buckets
}

locals {
  buckets = {
    code    = aws_s3_bucket.code
    results = aws_s3_bucket.results
  }
}

resource "aws_s3_bucket_versioning" "code" {
  bucket = aws_s3_bucket.code.bucket
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.bucket
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.bucket
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.bucket
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = local.buckets

  bucket = each.value.bucket
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [each.value.arn, "${each.value.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyOutdatedTls"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [each.value.arn, "${each.value.arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  })

  # S3 rejects a bucket policy while the public access block is still being applied.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "code" {
  bucket = aws_s3_bucket.code.bucket

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.code]
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.bucket

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = var.results_expiration_days == null ? [] : [var.results_expiration_days]
    content {
      id     = "expire-results"
      status = "Enabled"
      filter {
        prefix = "results/"
      }
      expiration {
        days = rule.value
      }
    }
  }
}

# The Lambda package goes through S3: it is larger than the 50 MB a direct upload allows.
resource "aws_s3_object" "lambda_package" {
  bucket      = aws_s3_bucket.code.bucket
  key         = "lambda/orch-lambda.zip"
  source      = var.lambda_zip
  source_hash = filemd5(var.lambda_zip)

  depends_on = [aws_s3_bucket_versioning.code, aws_s3_bucket_server_side_encryption_configuration.this]
}
