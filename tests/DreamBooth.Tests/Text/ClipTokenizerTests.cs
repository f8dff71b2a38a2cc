using System.Diagnostics;
using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Text;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Text;

public class ClipTokenizerTests(ITestOutputHelper output)
{
    static ClipTokenizer Tok => ClipFixture.Sd1;

    [Fact]
    public void Properties_come_from_the_config_files()
    {
        Assert.Equal(49406, Tok.BosId);
        Assert.Equal(49407, Tok.EosId);
        Assert.Equal(49407, Tok.PadId);
        Assert.Equal(77, Tok.ModelMaxLength);
        Assert.Equal(49408, Tok.VocabSize);
        Assert.Equal(48894, Tok.MergeCount);
        Assert.Equal(0, ClipFixture.Sd2.PadId);
        Assert.Equal("!", ClipFixture.Sd2.PadToken);
    }

    [Fact]
    public void Readme_example_photo_of_a_cat()
    {
        Assert.Equal([49406, 320, 1125, 539, 320, 2368, 49407], Tok.EncodeForModel("a photo of a cat").InputIds[..7]);
    }

    [Fact]
    public void Literal_special_tokens_in_a_prompt_are_matched_as_special_tokens()
    {
        Assert.Equal([49407], Tok.Encode("<|endoftext|>"));
        Assert.Equal([49406], Tok.Encode("<|startoftext|>"));
        // split before clean-up, so the neighbours are separate words: a</w> <|startoftext|> b</w>
        Assert.Equal([320, 49406, 321], Tok.Encode("a<|startoftext|>b"));
        // not a trie match (upper case), but after lower-casing CLIP's regex and bpe cache still map it to the id
        Assert.Equal([320, 49407, 321], Tok.Encode("a <|ENDOFTEXT|> b"));
        // the SD 2.x tokenizer splits "!" off the same way
        Assert.Equal([2781, 0, 0, 0], ClipFixture.Sd2.Encode("wow!!!"));
        Assert.Equal([2781, 995], Tok.Encode("wow!!!"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(" \n\t\r\n ")]
    public void Empty_or_whitespace_prompt_gives_bos_eos_and_padding(string prompt)
    {
        Assert.Empty(Tok.Encode(prompt));
        var t = Tok.EncodeForModel(prompt);
        Assert.Equal(new[] { 49406, 49407 }.Concat(Enumerable.Repeat(49407, 75)), t.InputIds);
        Assert.False(t.Truncated);
        var t2 = ClipFixture.Sd2.EncodeForModel(prompt);
        Assert.Equal(new[] { 49406, 49407 }.Concat(Enumerable.Repeat(0, 75)), t2.InputIds);
    }

    [Fact]
    public void Truncation_is_reported_with_what_was_cut()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("a", 78)) + " red cat";
        var t = Tok.EncodeForModel(prompt);
        Assert.True(t.Truncated);
        Assert.Equal(80, t.TokenCount);
        Assert.Equal(75, t.KeptCount);
        Assert.Equal([320, 320, 320, 736, 2368], t.CutIds);
        Assert.Equal(["a</w>", "a</w>", "a</w>", "red</w>", "cat</w>"], t.CutTokens);
        Assert.Equal("a a a red cat", t.CutText);
        Assert.Equal(49407, t.InputIds[76]);
        Assert.Contains("80 tokens", t.TruncationWarning);
        Assert.Contains("a a a red cat", t.TruncationWarning);

        var exact = Tok.EncodeForModel(string.Join(' ', Enumerable.Repeat("a", 75)));
        Assert.False(exact.Truncated);
        Assert.Empty(exact.CutIds);
        Assert.Null(exact.TruncationWarning);
    }

    [Theory]
    [InlineData("cafÃ©", "café")]                 // mojibake (UTF-8 read as Windows-1252)
    [InlineData("The â€œbestâ€\u009d", "The \"best\"")]
    [InlineData("ﬁne ﬂower", "fine flower")]       // Latin ligatures
    [InlineData("ＡＢＣ　１２３！", "ABC 123!")]   // full-width forms and ideographic space
    [InlineData("&amp;amp; &lt;3", "& <3")]        // entities unescaped repeatedly
    [InlineData("<b>&amp;</b>", "<b>&amp;</b>")]  // not when the text has '<'
    [InlineData("it&#39;s &#x41;&#150;&#65abc; &EACUTE;", "it's A\u2013&#65abc; \u00c9")] // numeric refs as html.unescape; ALL-CAPS names
    [InlineData("e\u0301t\u00e9", "\u00e9t\u00e9")] // NFC
    [InlineData("it\u2019s \u201cok\u201d", "it's \"ok\"")]
    [InlineData("a\u200b\u0007b\ufeff", "a\u200bb")] // control characters removed (zero-width space kept, as ftfy)
    [InlineData("\u001b[31mred\u001b[0m", "red")]   // terminal escapes
    public void FixText_matches_ftfy(string input, string expected)
    {
        Assert.Equal(expected, TextCleaner.FixText(input));
    }

    [Fact]
    public void Clean_up_feeds_the_same_ids_as_the_clean_text()
    {
        Assert.Equal(Tok.Encode("café"), Tok.Encode("cafÃ©"));
        Assert.Equal(Tok.Encode("fine"), Tok.Encode("ﬁne"));
        Assert.Equal(Tok.Encode("abc 123"), Tok.Encode("ＡＢＣ　１２３"));
        Assert.Equal(Tok.Encode("x & z"), Tok.Encode("x &amp; z"));
        Assert.NotEqual(Tok.Encode("x < y & z"), Tok.Encode("x < y &amp; z"));
        Assert.Equal(Tok.Encode("a photo of a cat"), Tok.Encode("  A\tPHOTO\n of a   Cat "));
    }

    [Fact]
    public void Digits_are_single_tokens_and_symbol_runs_stay_together()
    {
        Assert.Equal(["1</w>", "0</w>", "2</w>", "4</w>"], Tok.Tokens("1024"));
        Assert.Equal(["what</w>", "?...</w>"], Tok.Tokens("what?..."));
        Assert.Equal(["don</w>", "'t</w>"], Tok.Tokens("don't"));
    }

    [Theory]
    [InlineData("a photo of a café 🐱 in 東京")]
    [InlineData("wow!!! amazing")]
    [InlineData("state-of-the-art, 1024x768")]
    public void Decode_inverts_encode_up_to_cleaning(string text)
    {
        var ids = Tok.EncodeForModel(text).InputIds;
        var decoded = Tok.Decode(ids);
        Assert.DoesNotContain("<|", decoded);
        Assert.Equal(Tok.Encode(text), Tok.Encode(decoded));
        Assert.Equal("<|startoftext|>a cat <|endoftext|>", Tok.Decode([49406, 320, 2368, 49407], keepSpecialTokens: true));
        Assert.Equal("a cat", Tok.Decode([49406, 320, 2368, 49407]));
    }

    [Fact]
    public void Missing_folder_or_files_throw_ModelLoadException_naming_the_file()
    {
        using var tmp = TestPaths.NewTempDir();
        var e1 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(Path.Combine(tmp.Path, "nope")));
        Assert.Contains("nope", e1.FilePath);

        var e2 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
        Assert.EndsWith("vocab.json", e2.FilePath);

        File.Copy(Path.Combine(ClipFixture.Folder, "vocab.json"), tmp.File("vocab.json"));
        var e3 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
        Assert.EndsWith("merges.txt", e3.FilePath);
        Assert.Contains("missing", e3.Problem);
    }

    [Fact]
    public void Corrupt_files_throw_ModelLoadException_naming_the_file()
    {
        using var tmp = TestPaths.NewTempDir();
        File.WriteAllText(tmp.File("vocab.json"), "{ \"a\": 1, oops");
        File.Copy(Path.Combine(ClipFixture.Folder, "merges.txt"), tmp.File("merges.txt"));
        var e1 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
        Assert.EndsWith("vocab.json", e1.FilePath);

        File.Copy(Path.Combine(ClipFixture.Folder, "vocab.json"), tmp.File("vocab.json"), overwrite: true);
        File.WriteAllText(tmp.File("merges.txt"), "#version: 0.2\nt h\nthis is not a merge\n");
        var e2 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
        Assert.EndsWith("merges.txt", e2.FilePath);
        Assert.Contains("line 3", e2.Problem);

        File.Copy(Path.Combine(ClipFixture.Folder, "merges.txt"), tmp.File("merges.txt"), overwrite: true);
        File.WriteAllText(tmp.File("tokenizer_config.json"), "{ \"pad_token\": \"<|no-such-token|>\" }");
        var e3 = Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
        Assert.EndsWith("tokenizer_config.json", e3.FilePath);
        Assert.Contains("pad_token", e3.Problem);

        File.WriteAllText(tmp.File("tokenizer_config.json"), "not json");
        Assert.Throws<ModelLoadException>(() => ClipTokenizer.FromFolder(tmp.Path));
    }

    [Fact]
    public void A_diffusers_model_folder_finds_its_tokenizer_subfolder()
    {
        using var tmp = TestPaths.NewTempDir();
        var sub = Directory.CreateDirectory(Path.Combine(tmp.Path, "tokenizer")).FullName;
        foreach (var f in new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(ClipFixture.Folder, f), Path.Combine(sub, f));
        var tok = ClipTokenizer.FromFolder(tmp.Path);
        Assert.Equal([320, 1125, 539, 320, 2368], tok.Encode("a photo of a cat"));
    }

    [Fact]
    public void Encode_throughput_is_measured_and_results_are_stable()
    {
        var prompts = ClipFixture.Cases().Select(DreamBooth.Parity.TokenizerParity.CasePrompt).ToArray();
        var first = prompts.Select(Tok.Encode).ToArray();
        // the same prompts again must give the same ids (the library's word cache must not change results)
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(first[i], Tok.Encode(prompts[i]));
        int n = 0, ids = 0;
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < 500)
            foreach (var p in prompts) { ids += Tok.Encode(p).Length; n++; }
        sw.Stop();
        Assert.Equal(first.Sum(f => f.Length) * (n / prompts.Length), ids - first.Take(n % prompts.Length).Sum(f => f.Length));
        output.WriteLine($"Encode: {n / sw.Elapsed.TotalSeconds:F0} prompts/s, {ids / sw.Elapsed.TotalSeconds:F0} ids/s ({n} encodes of the {prompts.Length} fixture prompts, warm cache).");
    }
}
