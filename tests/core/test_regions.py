from tfdeploy.model.regions import KNOWN_REGIONS, partition_of, short_name


def test_short_names_follow_the_reference_pattern():
    assert short_name("us-east-1") == "use1"
    assert short_name("eu-central-1") == "euc1"
    assert short_name("ap-southeast-1") == "apse1"
    assert short_name("us-gov-west-1") == "usgw1"
    assert short_name("cn-northwest-1") == "cnnw1"


def test_short_names_are_unique_across_known_regions():
    shorts = [short_name(r) for r in KNOWN_REGIONS]
    assert len(shorts) == len(set(shorts))


def test_partitions():
    assert partition_of("us-east-1") == "aws"
    assert partition_of("us-gov-east-1") == "aws-us-gov"
    assert partition_of("cn-north-1") == "aws-cn"
