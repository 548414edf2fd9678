<?php
return boom($id, ['a' => 1], 2.5);
