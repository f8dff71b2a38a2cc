using DreamBooth.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Text;

public class PromptWeightingTests
{
    static ClipTokenizer Tok => ClipFixture.Sd1;
    const int A = 320, B = 321, Comma = 267, Bos = 49406, Eos = 49407;

    static void AssertParsed(string prompt, params (string Text, double Weight)[] expected)
    {
        var actual = PromptWeighting.Parse(prompt).Select(w => (w.Text, w.Weight)).ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact] public void Plain_text() => AssertParsed("normal text", ("normal text", 1.0));
    [Fact] public void Explicit_weight() => AssertParsed("a (b:1.5) c", ("a ", 1.0), ("b", 1.5), (" c", 1.0));
    [Fact] public void Weight_with_spaces() => AssertParsed("(b : 0.5 )", ("b ", 0.5)); // the text run stops at the colon, keeping its space
    [Fact] public void Round_brackets_multiply_by_1_1() => AssertParsed("(a)", ("a", 1.1));
    [Fact] public void Square_brackets_divide_by_1_1() => AssertParsed("[a]", ("a", 1 / 1.1));
    [Fact] public void Nested_brackets_multiply() => AssertParsed("((a))", ("a", 1.1 * 1.1));
    [Fact] public void Escaped_brackets_are_literal() => AssertParsed(@"\(a\) \[b\]", ("(a) [b]", 1.0));
    [Fact] public void Escaped_backslash_is_literal() => AssertParsed(@"a \\ b", (@"a \ b", 1.0));
    [Fact] public void Unbalanced_opener_applies_to_the_rest() => AssertParsed("(unbalanced", ("unbalanced", 1.1));
    [Fact] public void Unmatched_closers_are_text() => AssertParsed("a) b]", ("a) b]", 1.0));
    [Fact] public void Adjacent_equal_weights_merge() => AssertParsed("(unnecessary)(parens)", ("unnecessaryparens", 1.1));
    [Fact] public void Colon_without_bracket_is_text() => AssertParsed("a:b :1.2)", ("a:b :1.2)", 1.0));
    [Fact] public void Empty_prompt() => AssertParsed("", ("", 1.0));
    [Fact] public void Break_marker() => AssertParsed("a BREAK b", ("a", 1.0), ("BREAK", -1.0), ("b", 1.0));
    [Fact] public void Lower_case_break_is_text() => AssertParsed("a break b", ("a break b", 1.0));

    [Fact]
    public void A1111_docstring_example_exact_doubles()
    {
        // modules/prompt_parser.py docstring, including Python's float rounding
        AssertParsed("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            ("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
            ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1));
    }

    [Fact]
    public void Invalid_weight_throws_a_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => PromptWeighting.Parse("(a:1.2.3)"));
        Assert.Contains("1.2.3", e.Message);
    }

    static string Words(string w, int n) => string.Join(' ', Enumerable.Repeat(w, n));

    [Fact]
    public void Empty_prompt_is_one_chunk_of_bos_eos_pad()
    {
        var c = PromptWeighting.Tokenize(Tok, "");
        Assert.Equal(1, c.ChunkCount);
        Assert.Equal(77, c.ChunkLength);
        Assert.Equal(0, c.TokenCount);
        Assert.Equal(new long[] { Bos, Eos }.Concat(Enumerable.Repeat((long)Eos, 75)), c.ChunkIds(0));
        Assert.All(c.ChunkWeights(0), w => Assert.Equal(1f, w));
    }

    [Fact]
    public void Seventy_five_tokens_fit_one_chunk_and_seventy_six_make_two()
    {
        var one = PromptWeighting.Tokenize(Tok, Words("a", 75));
        Assert.Equal(1, one.ChunkCount);
        Assert.Equal(Eos, one.Ids[0, 76]);
        Assert.Equal(A, one.Ids[0, 75]);

        var two = PromptWeighting.Tokenize(Tok, Words("a", 76));
        Assert.Equal(2, two.ChunkCount);
        Assert.Equal(76, two.TokenCount);
        Assert.Equal([Bos, A, Eos, Eos], two.ChunkIds(1)[..4]);
    }

    [Fact]
    public void Comma_within_20_tokens_of_the_chunk_end_moves_the_tail_to_the_next_chunk()
    {
        // 60 a, ',', 20 b = 81 tokens. At 75 tokens the last comma is at 60 (15 from the end) → break after it.
        var c = PromptWeighting.Tokenize(Tok, Words("a", 60) + ", " + Words("b", 20));
        Assert.Equal(2, c.ChunkCount);
        var first = c.ChunkIds(0);
        Assert.All(first[1..61], id => Assert.Equal(A, id));
        Assert.Equal(Comma, first[61]);
        Assert.Equal(Eos, first[62]);
        var second = c.ChunkIds(1);
        Assert.All(second[1..21], id => Assert.Equal(B, id));
        Assert.Equal(Eos, second[21]);
        Assert.Equal(75 + 20, c.TokenCount);
    }

    [Fact]
    public void Comma_further_than_20_tokens_does_not_move_anything()
    {
        // 50 a, ',', 30 b: at 75 tokens the comma is 25 from the end → plain split at 75.
        var c = PromptWeighting.Tokenize(Tok, Words("a", 50) + ", " + Words("b", 30));
        Assert.Equal(2, c.ChunkCount);
        Assert.Equal(B, c.Ids[0, 75]);
        Assert.Equal([Bos, B, B, B, B, B, B, Eos], c.ChunkIds(1)[..8]);
    }

    [Fact]
    public void Comma_backtrack_can_be_turned_off()
    {
        var c = PromptWeighting.Tokenize(Tok, Words("a", 60) + ", " + Words("b", 20), new PromptChunkOptions { CommaBacktrack = 0 });
        Assert.Equal(B, c.Ids[0, 75]);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PromptChunkOptions { CommaBacktrack = -1 }.Validate());
    }

    [Fact]
    public void Break_starts_a_new_chunk()
    {
        var c = PromptWeighting.Tokenize(Tok, "a BREAK b");
        Assert.Equal(2, c.ChunkCount);
        Assert.Equal([Bos, A, Eos, Eos], c.ChunkIds(0)[..4]);
        Assert.Equal([Bos, B, Eos, Eos], c.ChunkIds(1)[..4]);
    }

    [Fact]
    public void Weights_follow_the_tokens()
    {
        var c = PromptWeighting.Tokenize(Tok, "(red cat:1.5) [dog]");
        Assert.Equal([Bos, 736, 2368, 1929, Eos], c.ChunkIds(0)[..5]);
        Assert.Equal([1f, 1.5f, 1.5f, (float)(1 / 1.1), 1f, 1f], c.ChunkWeights(0)[..6]);
    }

    [Fact]
    public void Sd2_chunks_pad_with_zero_after_eos()
    {
        var c = PromptWeighting.Tokenize(ClipFixture.Sd2, "a");
        Assert.Equal([Bos, A, Eos, 0, 0], c.ChunkIds(0)[..5]);
    }

    [Fact]
    public void Cond_and_uncond_are_padded_to_the_same_chunk_count_with_empty_chunks()
    {
        var cond = PromptWeighting.Tokenize(Tok, Words("a", 100));
        var uncond = PromptWeighting.Tokenize(Tok, "blurry");
        var (c, u) = PromptWeighting.MatchChunkCounts(Tok, cond, uncond);
        Assert.Equal(2, c.ChunkCount);
        Assert.Equal(2, u.ChunkCount);
        Assert.Equal(uncond.ChunkIds(0), u.ChunkIds(0));
        Assert.Equal(PromptWeighting.Tokenize(Tok, "").ChunkIds(0), u.ChunkIds(1));
        Assert.Same(cond, c);
    }

    [Fact]
    public void ApplyWeights_scales_tokens_and_restores_each_chunk_mean()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(7);
        var hidden = torch.randn([2, 77, 8], generator: gen) + 0.5;
        var weights = new float[2, 77];
        for (int c = 0; c < 2; c++) for (int i = 0; i < 77; i++) weights[c, i] = 1f;
        weights[0, 3] = 1.5f; weights[1, 10] = 0.5f;

        var z = PromptWeighting.ApplyWeights(hidden, weights);
        Assert.Equal(new long[] { 1, 154, 8 }, z.shape);
        var chunks = z.reshape(2, 77, 8);
        for (int c = 0; c < 2; c++)
            Assert.Equal(hidden[c].mean().item<float>(), chunks[c].mean().item<float>(), 1e-5f);

        // token 3 of chunk 0 is 1.5x token 4's scale relative to the input
        var scale0 = hidden[0].mean() / (hidden[0] * torch.tensor(Enumerable.Range(0, 77).Select(i => weights[0, i]).ToArray()).reshape(77, 1)).mean();
        var expected = hidden[0, 3] * 1.5f * scale0;
        Assert.True(torch.allclose(chunks[0, 3], expected, 1e-5, 1e-6));
        Assert.True(torch.allclose(chunks[0, 4], hidden[0, 4] * scale0, 1e-5, 1e-6));
    }

    [Fact]
    public void ApplyWeights_with_unit_weights_is_identity_and_checks_shapes()
    {
        using var scope = torch.NewDisposeScope();
        var hidden = torch.randn([1, 77, 4], generator: new torch.Generator(3));
        var ones = new float[1, 77];
        for (int i = 0; i < 77; i++) ones[0, i] = 1f;
        var z = PromptWeighting.ApplyWeights(hidden, ones);
        Assert.True(torch.allclose(z, hidden.reshape(1, 77, 4), 1e-6, 1e-7));
        Assert.Throws<ArgumentException>(() => PromptWeighting.ApplyWeights(hidden, new float[2, 77]));
        Assert.Throws<ArgumentException>(() => PromptWeighting.ApplyWeights(hidden.reshape(77, 4), ones));
    }

    [Fact]
    public void IdsTensor_has_chunk_shape()
    {
        using var scope = torch.NewDisposeScope();
        var c = PromptWeighting.Tokenize(Tok, Words("a", 80));
        var t = c.IdsTensor();
        Assert.Equal(new long[] { 2, 77 }, t.shape);
        Assert.Equal(ScalarType.Int64, t.dtype);
        Assert.Equal(Bos, t[1, 0].item<long>());
    }
}
