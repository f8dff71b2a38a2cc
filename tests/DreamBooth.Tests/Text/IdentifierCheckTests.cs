using DreamBooth.Text;

namespace DreamBooth.Tests.Text;

public class IdentifierCheckTests
{
    static ClipTokenizer Tok => ClipFixture.Sd1;

    [Fact]
    public void Sks_is_flagged_as_a_known_bad_identifier()
    {
        var r = IdentifierCheck.Check(Tok, "sks");
        Assert.Equal(IdentifierVerdict.Bad, r.Verdict);
        Assert.Single(r.Pieces);
        Assert.Equal(48136, r.Pieces[0].Id);
        Assert.Contains(r.Reasons, x => x.Contains("rifle"));
        Assert.Contains("sks</w>", r.Explanation);
    }

    [Fact]
    public void Long_consonant_scramble_is_good()
    {
        var r = IdentifierCheck.Check(Tok, "llmcbrrrqqdpj");
        Assert.Equal(IdentifierVerdict.Good, r.Verdict);
        Assert.Equal(["ll", "mc", "br", "rr", "qq", "d", "pj</w>"], r.Pieces.Select(p => p.Token));
        Assert.Equal([1657, 1278, 711, 5311, 31960, 67, 17179], r.Pieces.Select(p => p.Id));
        Assert.DoesNotContain(r.Pieces, p => p.IsCommon);
        Assert.Contains(r.Reasons, x => x.Contains("7 of the 75"));
    }

    [Fact]
    public void A_common_word_is_bad()
    {
        var r = IdentifierCheck.Check(Tok, "cat");
        Assert.Equal(IdentifierVerdict.Bad, r.Verdict);
        Assert.True(r.Pieces[0].IsCommon);
    }

    [Fact]
    public void An_identifier_containing_a_common_word_gets_caution()
    {
        var r = IdentifierCheck.Check(Tok, "zqcatxq");
        Assert.NotEqual(IdentifierVerdict.Good, r.Verdict);
        Assert.Contains(r.Pieces, p => p.IsCommon);
    }

    [Fact]
    public void Spaces_are_rejected()
    {
        Assert.Equal(IdentifierVerdict.Bad, IdentifierCheck.Check(Tok, "zwx person").Verdict);
        Assert.Equal(IdentifierVerdict.Bad, IdentifierCheck.Check(Tok, "  ").Verdict);
    }

    [Fact]
    public void Alternatives_are_deterministic_rare_and_distinct()
    {
        var a = IdentifierCheck.GenerateAlternatives(Tok, 6, seed: 42);
        var b = IdentifierCheck.GenerateAlternatives(Tok, 6, seed: 42);
        var c = IdentifierCheck.GenerateAlternatives(Tok, 6, seed: 43);
        Assert.Equal(6, a.Count);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(a.Count, a.Distinct().Count());
        foreach (var alt in a)
        {
            Assert.DoesNotContain(alt, "aeiouy");
            var r = IdentifierCheck.Check(Tok, alt, new IdentifierCheckOptions { Alternatives = 0 });
            Assert.Equal(IdentifierVerdict.Good, r.Verdict);
            Assert.InRange(r.Pieces.Count, 2, 4);
        }
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IdentifierCheckOptions { MinPieces = 3, MaxPieces = 2 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new IdentifierCheckOptions { CommonMergeRank = -1 }.Validate());
    }
}
